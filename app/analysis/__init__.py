"""Analysis and quality control: methods and their versions, analyst qualifications (上岗证),
batches and worksheets, calibration curves, results with every intermediate value, QC
evaluation and corrective actions, control charts, instrument data import, and evaluation
against quality standards."""
