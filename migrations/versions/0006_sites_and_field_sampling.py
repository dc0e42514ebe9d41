"""sites and field sampling

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:12:47.397384
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.db
from app.core.append_only import protect, unprotect

# frozen here: the migration must not change when the models do
APPEND_ONLY_TABLES = ("site_version", "site_version_parameter", "field_entry", "sample_photo")

_HJ493 = "HJ 493-2009 Table 1 (verify)"
# The preservation table as shipped: configurable defaults (DOMAIN.md §4.1), not hard-coded rules.
# (parameter, matrix, name_zh, name_en, group, container, volume_ml, preservative zh/en,
#  storage zh/en, holding hours or None (as soon as possible: the method sets it), field test,
#  unit, source)
PRESERVATION_DEFAULTS = [
    ("WT", "water", "水温", "Water temperature", "field", "-", 0, "", "", "现场测定", "measured on site",
     None, True, "°C", "HJ 91.2-2022 (verify)"),
    ("pH", "water", "pH 值", "pH", "field", "P/G", 0, "无", "none", "现场测定", "test on site",
     12, True, "pH", _HJ493),
    ("DO", "water", "溶解氧", "Dissolved oxygen", "field", "-", 0, "", "", "现场测定", "measured on site",
     None, True, "mg/L", "HJ 506-2009 (verify)"),
    ("EC", "water", "电导率", "Conductivity", "field", "-", 0, "", "", "现场测定", "measured on site",
     None, True, "µS/cm", "HJ 802-2016 (verify)"),
    ("Turbidity", "water", "浊度", "Turbidity", "field", "-", 0, "", "", "现场测定", "measured on site",
     None, True, "NTU", "HJ 1075-2019 (verify)"),
    ("COD", "water", "化学需氧量", "Chemical oxygen demand", "h2so4", "G", 100, "H2SO4 至 pH ≤ 2",
     "H2SO4 to pH ≤ 2", "0–5 °C", "0–5 °C", 48, False, "", _HJ493),
    ("NH3-N", "water", "氨氮", "Ammonia nitrogen", "h2so4", "P/G", 250, "H2SO4 至 pH ≤ 2",
     "H2SO4 to pH ≤ 2", "0–5 °C", "0–5 °C", 24, False, "", _HJ493),
    ("TN", "water", "总氮", "Total nitrogen", "h2so4", "P/G", 250, "H2SO4 至 pH ≤ 2", "H2SO4 to pH ≤ 2",
     "0–5 °C", "0–5 °C", 168, False, "", _HJ493),
    ("TP", "water", "总磷", "Total phosphorus", "h2so4", "P/G", 250, "H2SO4 至 pH ≤ 2（或 HCl）",
     "H2SO4 (or HCl) to pH ≤ 2", "0–5 °C", "0–5 °C", 24, False, "", _HJ493),
    ("CODMn", "water", "高锰酸盐指数", "Permanganate index", "cool_dark", "G", 500, "无", "none",
     "0–5 °C 避光", "0–5 °C, dark", 48, False, "", _HJ493),
    ("LAS", "water", "阴离子表面活性剂", "Anionic surfactants (LAS)", "cool_dark", "P/G", 250, "无", "none",
     "冷藏", "cool", 24, False, "", _HJ493),
    ("BOD5", "water", "五日生化需氧量", "Biochemical oxygen demand (5 d)", "bod5", "DO bottle", 300,
     "无，瓶内充满", "none, bottle filled", "0–4 °C 避光", "0–4 °C, dark", 12, False, "", _HJ493),
    ("Cu", "water", "铜", "Copper", "hno3", "P", 100, "每升加 10 mL 浓 HNO3", "10 mL conc. HNO3 per L",
     "", "", 336, False, "", _HJ493),
    ("Zn", "water", "锌", "Zinc", "hno3", "P", 100, "每升加 10 mL 浓 HNO3", "10 mL conc. HNO3 per L",
     "", "", 336, False, "", _HJ493),
    ("Pb", "water", "铅", "Lead", "hno3", "P", 100, "每升加 10 mL 浓 HNO3", "10 mL conc. HNO3 per L",
     "", "", 336, False, "", _HJ493),
    ("Cd", "water", "镉", "Cadmium", "hno3", "P", 100, "每升加 10 mL 浓 HNO3", "10 mL conc. HNO3 per L",
     "", "", 336, False, "", _HJ493),
    ("Hg", "water", "汞", "Mercury", "hcl_hg", "P/G", 250, "HCl 至 1%", "HCl to 1 %", "", "",
     336, False, "", _HJ493),
    ("Cr6+", "water", "六价铬", "Hexavalent chromium", "naoh_cr6", "P/G", 250, "NaOH 至 pH 8–9",
     "NaOH to pH 8–9", "", "", 336, False, "", _HJ493 + "; GB 7467-87 may be stricter"),
    ("VPhenol", "water", "挥发酚", "Volatile phenol", "phenol", "G", 1000,
     "H3PO4 至 pH≈4；有余氯时加抗坏血酸", "H3PO4 to pH ≈ 4; ascorbic acid for residual chlorine",
     "0–5 °C", "0–5 °C", 24, False, "", _HJ493),
    ("CN", "water", "氰化物", "Cyanide", "naoh_cn", "P/G", 500, "NaOH 至 pH ≥ 9", "NaOH to pH ≥ 9",
     "0–5 °C", "0–5 °C", 12, False, "", _HJ493),
    ("Oil", "water", "石油类", "Petroleum", "oil", "G", 1000, "HCl 至 pH ≤ 2；单独采样，不得润洗",
     "HCl to pH ≤ 2; own bottle, no rinsing", "0–5 °C", "0–5 °C", 168, False, "", _HJ493),
    ("FC", "water", "粪大肠菌群", "Fecal coliforms", "micro", "G-sterile", 250, "无", "none",
     "冷藏避光", "cool, dark", None, False, "", _HJ493 + "; HJ 347.2-2018 sets the limit"),
    ("PM10", "air", "PM10", "PM10", "filter_pm10", "filter", 0, "滤膜密封保存", "filter sealed in its box",
     "≤ 4 °C", "≤ 4 °C", None, False, "", "HJ 618-2011 (verify)"),
    ("PM2.5", "air", "PM2.5", "PM2.5", "filter_pm25", "filter", 0, "滤膜密封保存", "filter sealed in its box",
     "≤ 4 °C", "≤ 4 °C", None, False, "", "HJ 618-2011 (verify)"),
    ("SO2", "air", "二氧化硫", "Sulfur dioxide", "absorb_so2", "absorption tube", 10, "甲醛缓冲吸收液",
     "formaldehyde buffer absorbing solution", "避光", "dark", None, False, "", "HJ 482-2009 (verify)"),
    ("NO2", "air", "二氧化氮", "Nitrogen dioxide", "absorb_no2", "absorption tube", 10, "吸收液",
     "absorbing solution", "避光", "dark", None, False, "", "HJ 479-2009 (verify)"),
]

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('preservation_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('parameter', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('matrix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name_zh', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('group_code', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('container_type', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('volume_ml', sa.Integer(), nullable=False),
    sa.Column('preservative_zh', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('preservative_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('storage_zh', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('storage_en', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('holding_hours', sa.Integer(), nullable=True),
    sa.Column('field_test', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_preservation_rule')),
    sa.UniqueConstraint('parameter', 'method', name=op.f('uq_preservation_rule_parameter_method'))
    )
    op.create_table('idempotency_key',
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=False),
    sa.Column('request_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=False),
    sa.Column('response_body', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', app.core.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['app_user.id'], name=op.f('fk_idempotency_key_actor_id_app_user')),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_idempotency_key'))
    )
    op.create_table('sample_no_counter',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sample_no_counter'))
    )
    op.create_table('monitoring_plan',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', app.core.db.UTCDateTime(), nullable=False),
    sa.Column('approved_by_id', sa.Integer(), nullable=True),
    sa.Column('approved_at', app.core.db.UTCDateTime(), nullable=True),
    sa.Column('closed_at', app.core.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['approved_by_id'], ['app_user.id'], name=op.f('fk_monitoring_plan_approved_by_id_app_user')),
    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], name=op.f('fk_monitoring_plan_created_by_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_plan')),
    sa.UniqueConstraint('code', name=op.f('uq_monitoring_plan_code'))
    )
    with op.batch_alter_table('monitoring_plan', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_plan_status'), ['status'], unique=False)

    op.create_table('site',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('current_version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.core.db.UTCDateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], name=op.f('fk_site_created_by_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site')),
    sa.UniqueConstraint('code', name=op.f('uq_site_code'))
    )
    with op.batch_alter_table('site', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_status'), ['status'], unique=False)

    op.create_table('plan_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('frequency', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('day_in_period', sa.Integer(), nullable=False),
    sa.Column('sampler_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['plan_id'], ['monitoring_plan.id'], name=op.f('fk_plan_line_plan_id_monitoring_plan')),
    sa.ForeignKeyConstraint(['sampler_id'], ['app_user.id'], name=op.f('fk_plan_line_sampler_id_app_user')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_plan_line_site_id_site')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_line'))
    )
    with op.batch_alter_table('plan_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_line_plan_id'), ['plan_id'], unique=False)

    op.create_table('sampling_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('scheduled_on', sa.Date(), nullable=False),
    sa.Column('sampler_id', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('field_blanks', sa.Integer(), nullable=False),
    sa.Column('field_duplicates', sa.Integer(), nullable=False),
    sa.Column('cancel_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('created_at', app.core.db.UTCDateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('dispatched_at', app.core.db.UTCDateTime(), nullable=True),
    sa.Column('completed_at', app.core.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], name=op.f('fk_sampling_task_created_by_id_app_user')),
    sa.ForeignKeyConstraint(['plan_id'], ['monitoring_plan.id'], name=op.f('fk_sampling_task_plan_id_monitoring_plan')),
    sa.ForeignKeyConstraint(['sampler_id'], ['app_user.id'], name=op.f('fk_sampling_task_sampler_id_app_user')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_sampling_task_site_id_site')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sampling_task')),
    sa.UniqueConstraint('code', name=op.f('uq_sampling_task_code'))
    )
    with op.batch_alter_table('sampling_task', schema=None) as batch_op:
        batch_op.create_index('ix_sampling_task_day_status', ['scheduled_on', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_sampling_task_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index('ix_sampling_task_sampler_day', ['sampler_id', 'scheduled_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_sampling_task_site_id'), ['site_id'], unique=False)

    op.create_table('site_change_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('proposed', sa.Text(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('submitted_by_id', sa.Integer(), nullable=False),
    sa.Column('submitted_at', app.core.db.UTCDateTime(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', app.core.db.UTCDateTime(), nullable=True),
    sa.Column('decision_ref', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('decision_note', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('effective_from', app.core.db.UTCDateTime(), nullable=True),
    sa.Column('resulting_version_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['decided_by_id'], ['app_user.id'], name=op.f('fk_site_change_request_decided_by_id_app_user')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_site_change_request_site_id_site')),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['app_user.id'], name=op.f('fk_site_change_request_submitted_by_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site_change_request'))
    )
    with op.batch_alter_table('site_change_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_change_request_site_id'), ['site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_site_change_request_status'), ['status'], unique=False)

    op.create_table('site_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('version_no', sa.Integer(), nullable=False),
    sa.Column('valid_from', app.core.db.UTCDateTime(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name_zh', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('latitude', app.core.db.DecimalText(length=60), nullable=False),
    sa.Column('longitude', app.core.db.DecimalText(length=60), nullable=False),
    sa.Column('water_body', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('basin', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('district', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('department', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('change_request_id', sa.Integer(), nullable=False),
    sa.Column('approved_by_id', sa.Integer(), nullable=False),
    sa.Column('approval_ref', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', app.core.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['approved_by_id'], ['app_user.id'], name=op.f('fk_site_version_approved_by_id_app_user')),
    sa.ForeignKeyConstraint(['change_request_id'], ['site_change_request.id'], name=op.f('fk_site_version_change_request_id_site_change_request')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_site_version_site_id_site')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site_version')),
    sa.UniqueConstraint('site_id', 'version_no', name=op.f('uq_site_version_site_id_version_no'))
    )
    with op.batch_alter_table('site_version', schema=None) as batch_op:
        batch_op.create_index('ix_site_version_site_valid', ['site_id', 'valid_from'], unique=False)

    op.create_table('sample',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sample_no', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('matrix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('site_version_id', sa.Integer(), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.Column('client_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('client_contact', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('location_text', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('scheduled_on', sa.Date(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('sampler_id', sa.Integer(), nullable=True),
    sa.Column('collected_at', app.core.db.UTCDateTime(), nullable=True),
    sa.Column('signed_revision', sa.Integer(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('registered_at', app.core.db.UTCDateTime(), nullable=False),
    sa.Column('registered_by_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['sample.id'], name=op.f('fk_sample_duplicate_of_id_sample')),
    sa.ForeignKeyConstraint(['registered_by_id'], ['app_user.id'], name=op.f('fk_sample_registered_by_id_app_user')),
    sa.ForeignKeyConstraint(['sampler_id'], ['app_user.id'], name=op.f('fk_sample_sampler_id_app_user')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_sample_site_id_site')),
    sa.ForeignKeyConstraint(['site_version_id'], ['site_version.id'], name=op.f('fk_sample_site_version_id_site_version')),
    sa.ForeignKeyConstraint(['task_id'], ['sampling_task.id'], name=op.f('fk_sample_task_id_sampling_task')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sample')),
    sa.UniqueConstraint('sample_no', name=op.f('uq_sample_sample_no'))
    )
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sample_sampler_id'), ['sampler_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sample_site_id'), ['site_id'], unique=False)
        batch_op.create_index('ix_sample_state_day', ['state', 'scheduled_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_sample_task_id'), ['task_id'], unique=False)

    op.create_table('site_version_parameter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_version_id', sa.Integer(), nullable=False),
    sa.Column('parameter', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('frequency', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['site_version_id'], ['site_version.id'], name=op.f('fk_site_version_parameter_site_version_id_site_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site_version_parameter')),
    sa.UniqueConstraint('site_version_id', 'parameter', name=op.f('uq_site_version_parameter_site_version_id_parameter'))
    )
    with op.batch_alter_table('site_version_parameter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_version_parameter_site_version_id'), ['site_version_id'], unique=False)

    op.create_table('sample_container',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('barcode', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('sample_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('group_code', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('container_type', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('volume_ml', sa.Integer(), nullable=False),
    sa.Column('preservative_zh', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('preservative_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('filled_at', app.core.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', app.core.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['sample_id'], ['sample.id'], name=op.f('fk_sample_container_sample_id_sample')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sample_container')),
    sa.UniqueConstraint('barcode', name=op.f('uq_sample_container_barcode'))
    )
    with op.batch_alter_table('sample_container', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sample_container_sample_id'), ['sample_id'], unique=False)

    op.create_table('sample_parameter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sample_id', sa.Integer(), nullable=False),
    sa.Column('parameter', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.ForeignKeyConstraint(['sample_id'], ['sample.id'], name=op.f('fk_sample_parameter_sample_id_sample')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sample_parameter')),
    sa.UniqueConstraint('sample_id', 'parameter', name=op.f('uq_sample_parameter_sample_id_parameter'))
    )
    op.create_table('sample_photo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sample_id', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('thumbnail_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('caption', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('exif_taken_at', app.core.db.UTCDateTime(), nullable=True),
    sa.Column('exif_latitude', app.core.db.DecimalText(length=60), nullable=True),
    sa.Column('exif_longitude', app.core.db.DecimalText(length=60), nullable=True),
    sa.Column('time_difference_s', sa.Integer(), nullable=True),
    sa.Column('distance_m', sa.Integer(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('taken_by_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', app.core.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['stored_file.id'], name=op.f('fk_sample_photo_file_id_stored_file')),
    sa.ForeignKeyConstraint(['sample_id'], ['sample.id'], name=op.f('fk_sample_photo_sample_id_sample')),
    sa.ForeignKeyConstraint(['taken_by_id'], ['app_user.id'], name=op.f('fk_sample_photo_taken_by_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sample_photo')),
    sa.UniqueConstraint('client_id', name=op.f('uq_sample_photo_client_id'))
    )
    with op.batch_alter_table('sample_photo', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sample_photo_sample_id'), ['sample_id'], unique=False)

    op.create_table('field_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sample_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('act_at', app.core.db.UTCDateTime(), nullable=False),
    sa.Column('parameter', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('value', app.core.db.DecimalText(length=60), nullable=True),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('instrument_id', sa.Integer(), nullable=True),
    sa.Column('container_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.Text(), server_default='{}', nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('entered_by_id', sa.Integer(), nullable=False),
    sa.Column('entered_at', app.core.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['container_id'], ['sample_container.id'], name=op.f('fk_field_entry_container_id_sample_container')),
    sa.ForeignKeyConstraint(['entered_by_id'], ['app_user.id'], name=op.f('fk_field_entry_entered_by_id_app_user')),
    sa.ForeignKeyConstraint(['instrument_id'], ['instrument.id'], name=op.f('fk_field_entry_instrument_id_instrument')),
    sa.ForeignKeyConstraint(['sample_id'], ['sample.id'], name=op.f('fk_field_entry_sample_id_sample')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_field_entry')),
    sa.UniqueConstraint('client_id', name=op.f('uq_field_entry_client_id'))
    )
    with op.batch_alter_table('field_entry', schema=None) as batch_op:
        batch_op.create_index('ix_field_entry_instrument_time', ['instrument_id', 'act_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_field_entry_sample_id'), ['sample_id'], unique=False)

    # ### end Alembic commands ###
    for table in APPEND_ONLY_TABLES:
        protect(op.get_bind(), table)
    columns = ("parameter", "matrix", "name_zh", "name_en", "group_code", "container_type", "volume_ml",
               "preservative_zh", "preservative_en", "storage_zh", "storage_en", "holding_hours",
               "field_test", "unit", "source")
    rule = sa.table("preservation_rule", *(sa.column(name) for name in columns), sa.column("method"))
    op.bulk_insert(rule, [dict(zip(columns, row), method="") for row in PRESERVATION_DEFAULTS])


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        unprotect(op.get_bind(), table)
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('field_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_field_entry_sample_id'))
        batch_op.drop_index('ix_field_entry_instrument_time')

    op.drop_table('field_entry')
    with op.batch_alter_table('sample_photo', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sample_photo_sample_id'))

    op.drop_table('sample_photo')
    op.drop_table('sample_parameter')
    with op.batch_alter_table('sample_container', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sample_container_sample_id'))

    op.drop_table('sample_container')
    with op.batch_alter_table('site_version_parameter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_version_parameter_site_version_id'))

    op.drop_table('site_version_parameter')
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sample_task_id'))
        batch_op.drop_index('ix_sample_state_day')
        batch_op.drop_index(batch_op.f('ix_sample_site_id'))
        batch_op.drop_index(batch_op.f('ix_sample_sampler_id'))

    op.drop_table('sample')
    with op.batch_alter_table('site_version', schema=None) as batch_op:
        batch_op.drop_index('ix_site_version_site_valid')

    op.drop_table('site_version')
    with op.batch_alter_table('site_change_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_change_request_status'))
        batch_op.drop_index(batch_op.f('ix_site_change_request_site_id'))

    op.drop_table('site_change_request')
    with op.batch_alter_table('sampling_task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sampling_task_site_id'))
        batch_op.drop_index('ix_sampling_task_sampler_day')
        batch_op.drop_index(batch_op.f('ix_sampling_task_plan_id'))
        batch_op.drop_index('ix_sampling_task_day_status')

    op.drop_table('sampling_task')
    with op.batch_alter_table('plan_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_line_plan_id'))

    op.drop_table('plan_line')
    with op.batch_alter_table('site', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_status'))

    op.drop_table('site')
    with op.batch_alter_table('monitoring_plan', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitoring_plan_status'))

    op.drop_table('monitoring_plan')
    op.drop_table('sample_no_counter')
    op.drop_table('idempotency_key')
    op.drop_table('preservation_rule')
    # ### end Alembic commands ###
