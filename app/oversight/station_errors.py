"""Refusals of an automatic-station CSV import, each with its code and both languages. An import
is one transaction: every refusal leaves nothing behind (no readings, no import row, no file row)."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput


class StationFileTooLarge(DomainError):
    code = "station_file_too_large"
    http_status = 413
    message_zh = "自动站数据文件过大（{size_mb} MB），上限为 {limit_mb} MB：请按月或按站点分开导出。"
    message_en = ("The station data file is too large ({size_mb} MB); the limit is {limit_mb} MB. "
                  "Export it by month or by site.")


class StationFileEmpty(InvalidInput):
    code = "station_file_empty"
    message_zh = "自动站数据文件为空，或只有表头没有数据行。"
    message_en = "The station data file is empty, or has a header and no data rows."


class StationFileEncoding(InvalidInput):
    code = "station_file_encoding"
    message_zh = "无法识别文件编码：请另存为 CSV（UTF-8 或 GBK）。"
    message_en = "The file's encoding is not recognised: save it as CSV (UTF-8 or GBK)."


class StationFileMalformed(InvalidInput):
    code = "station_file_malformed"
    message_zh = "CSV 结构错误：{detail}"
    message_en = "Malformed CSV: {detail}"


class StationColumnsMissing(InvalidInput):
    code = "station_columns_missing"
    message_zh = ("表头缺少列：{missing}（需要 site_code/站点、parameter/项目、measured_at/时间、"
                  "value/数值、unit/单位）。")
    message_en = ("The header lacks the column(s): {missing} (needed: site_code, parameter, measured_at, value, "
                  "unit; or 站点, 项目, 时间, 数值, 单位).")


class StationFileAlreadyImported(DomainError):
    code = "station_file_already_imported"
    http_status = 409
    message_zh = "同一文件（SHA-256 {sha_short}…）已于 {at} 由 {who} 导入（{rows} 条读数），不能重复导入。"
    message_en = ("The same file (SHA-256 {sha_short}…) was already imported on {at} by {who} ({rows} readings); "
                  "it cannot be imported twice.")


PROBLEM_WORDS = {
    "unknown_site": ("没有站点“{cell}”", "no site “{cell}”"),
    "not_a_number": ("“{cell}”不是数值", "“{cell}” is not a number"),
    "comma_decimal": ("“{cell}”使用了逗号作小数点或千位分隔符",
                      "“{cell}” uses a comma as decimal or thousands separator"),
    "exponent": ("“{cell}”的指数超出范围", "“{cell}” has an exponent out of range"),
    "bad_time": ("“{cell}”不是可识别的时间（ISO 8601 或 YYYY-MM-DD HH:MM）",
                 "“{cell}” is not a time (ISO 8601 or YYYY-MM-DD HH:MM)"),
    "future_time": ("时间“{cell}”在将来", "the time “{cell}” is in the future"),
    "empty": ("{column}为空", "{column} is empty"),
    "too_long": ("“{cell}”过长", "“{cell}” is too long"),
    "too_many_cells": ("列数多于表头", "more cells than the header has columns"),
    "repeated_in_file": ("与第 {cell} 行为同一站点、项目和时间", "the same site, parameter and time as row {cell}"),
    "already_recorded": ("该站点、项目和时间已有读数（导入 {cell}）", "a reading of this site, parameter and time "
                         "was already imported (import {cell})"),
}


class StationRowProblem:
    """A bad line of the file, named by its line number and column."""

    def __init__(self, row_no: int, column: str, code: str, cell: str = "") -> None:
        self.row_no, self.column, self.code = row_no, column, code
        self.cell = cell if len(cell) <= 40 else cell[:40] + "…"

    def text(self, language: str) -> str:
        zh, en = PROBLEM_WORDS.get(self.code, ("无法读取“{cell}”", "cannot read “{cell}”"))
        if language.startswith("zh"):
            return f"第 {self.row_no} 行 {self.column} 列：" + zh.format(cell=self.cell, column=self.column)
        return f"line {self.row_no}, column {self.column}: " + en.format(cell=self.cell, column=self.column)

    def as_json(self) -> dict[str, object]:
        return {"line": self.row_no, "column": self.column, "code": self.code, "cell": self.cell}


class StationRowsRefused(InvalidInput):
    """Every bad line of the file in one refusal; nothing is imported."""

    code = "station_rows_refused"
    message_zh = "文件中有 {count} 行无法导入（第 {lines} 行），未导入任何读数：{first}"
    message_en = "{count} line(s) of the file cannot be imported (line {lines}); nothing was imported: {first}"
    SHOWN_LINES = 30

    def __init__(self, problems: list[StationRowProblem]) -> None:
        self.problems = problems
        numbers = sorted({p.row_no for p in problems})
        lines = ", ".join(str(n) for n in numbers[:self.SHOWN_LINES]) + ("…" if len(numbers) > self.SHOWN_LINES else "")
        super().__init__(count=len(numbers), lines=lines, first="")

    def message(self, language: str) -> str:
        self.params["first"] = self.problems[0].text(language) if self.problems else ""
        return super().message(language)
