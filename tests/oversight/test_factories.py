"""The oversight factories write records the rules can read (the rules tests rely on them)."""

from tests.oversight.conftest import *  # noqa
def test_factory(lab):
    m = lab.method("HJ 535-2009", ("NH3-N", "0.025"), ("TN", "0.05"))
    site = lab.site("WS01")
    s1, s2 = lab.samples(2, site=site, parameters=("NH3-N", "TN"))
    b = lab.batch(m, parameters=("NH3-N", "TN"))
    r = lab.result(b, s1, "NH3-N", "0.512")
    lab.result(b, s1, "TN", "0.4")
    d = lab.qc_position(b, "duplicate", of=lab._position_of(b, s1))
    lab.result(b, d, "NH3-N", "0.512")
    lab.qc(b, "duplicate", "NH3-N", "0.00", position=d)
    assert r.sample_id == s1.id
