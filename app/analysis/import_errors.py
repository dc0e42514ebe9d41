"""Refusals of instrument data import (reading an export, matching it to a batch, import
profiles), each with its code and both languages. Every one changes nothing: the import is one
transaction and services raise these before (or instead of) committing."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound

# ---------------------------------------------------------------- reading the file


class ImportTooLarge(DomainError):
    code = "import_too_large"
    http_status = 413
    message_zh = "仪器导出文件过大（{size_mb} MB），上限为 {limit_mb} MB：请按批次分开导出。"
    message_en = ("The instrument file is too large ({size_mb} MB); the limit is {limit_mb} MB. "
                  "Export the batch separately.")


class ImportFileEmpty(InvalidInput):
    code = "import_file_empty"
    message_zh = "上传的仪器导出文件为空。"
    message_en = "The uploaded instrument file is empty."


class UnreadableEncoding(InvalidInput):
    code = "import_unreadable_encoding"
    message_zh = ("无法识别文件编码：既不是 UTF-8（含 BOM）、UTF-16，也不是 GB18030/GBK。"
                  "请在仪器软件中另存为 CSV（UTF-8）。")
    message_en = ("The file's encoding is not recognised: neither UTF-8 (with or without BOM), UTF-16 nor "
                  "GB18030/GBK. Save it from the instrument software as CSV (UTF-8).")


class NotAnXlsx(InvalidInput):
    code = "import_not_xlsx"
    message_zh = "文件不是有效的 Excel 工作簿（.xlsx）：{detail}"
    message_en = "The file is not a valid Excel workbook (.xlsx): {detail}"


class SheetMissing(InvalidInput):
    code = "import_sheet_missing"
    message_zh = "工作簿中没有名为“{sheet}”的工作表（现有：{sheets}）。"
    message_en = "The workbook has no sheet named “{sheet}” (it has: {sheets})."


class UnknownLayout(InvalidInput):
    """The file is not laid out as the chosen profile expects: nothing is guessed."""

    code = "import_unknown_layout"
    message_zh = "文件格式与导入配置“{profile}”不符：{detail_zh}"
    message_en = "The file is not laid out as the import profile “{profile}” expects: {detail_en}"


class CellProblems(InvalidInput):
    """Cells that cannot be read as the profile says; listed by row and column, nothing imported."""

    code = "import_cell_problems"
    message_zh = "文件中有 {count} 处单元格无法读取，未导入任何结果：{first}"
    message_en = "{count} cell(s) in the file cannot be read; nothing was imported: {first}"

    def __init__(self, problems: list) -> None:
        self.problems = problems  # CellProblem values (import_parsers), each naming its row and column
        super().__init__(count=len(problems), first="")

    def message(self, language: str) -> str:
        self.params["first"] = self.problems[0].text(language) if self.problems else ""
        return super().message(language)


# ---------------------------------------------------------------- importing into a batch


class ImportNotFound(NotFound):
    code = "import_not_found"
    message_zh = "未找到导入记录 {which}。"
    message_en = "Import {which} not found."


class BatchNotOpenForImport(DomainError):
    code = "import_batch_closed"
    http_status = 409
    message_zh = "分析批 {batch_no} 已{state_zh}，不能再导入结果：更正请在结果中修订并说明原因。"
    message_en = "Analysis batch {batch_no} is {state_en}; no more results can be imported into it."


class ImportAlreadyDone(DomainError):
    code = "import_already_done"
    http_status = 409
    message_zh = ("同一文件（SHA-256 {sha_short}…）已于 {at} 由 {who} 导入分析批 {batch_no}（导入记录 {which}），"
                  "不能重复导入。")
    message_en = ("The same file (SHA-256 {sha_short}…) was already imported into batch {batch_no} on {at} by "
                  "{who} (import {which}); it cannot be imported twice.")


class NothingMatched(DomainError):
    code = "import_nothing_matched"
    http_status = 422
    message_zh = ("文件中的 {total} 行没有一行对应本批的样品位置和检测项目（例如第 {row} 行：{reason_zh}），"
                  "未导入任何结果。请检查导入配置和样品编号。")
    message_en = ("None of the file's {total} row(s) matches a position and parameter of this batch (row {row}: "
                  "{reason_en}); nothing was imported. Check the import profile and the sample numbers.")


class WrongUnit(InvalidInput):
    code = "import_wrong_unit"
    message_zh = "第 {row} 行“{column}”列：单位 {unit} 与方法规定的 {expected}（{parameter}）不符，未导入任何结果。"
    message_en = ("Row {row}, column “{column}”: the unit {unit} is not the method's {expected} for {parameter}; "
                  "nothing was imported.")


# ---------------------------------------------------------------- profiles


class ProfileNotFound(NotFound):
    code = "import_profile_not_found"
    message_zh = "未找到导入配置 {which}。"
    message_en = "Import profile {which} not found."


class ProfileInactive(DomainError):
    code = "import_profile_inactive"
    http_status = 409
    message_zh = "导入配置 {which} 已停用。"
    message_en = "Import profile {which} is no longer in use."


class BuiltinProfileReadOnly(DomainError):
    code = "import_profile_builtin"
    http_status = 409
    message_zh = "内置导入配置 {which} 的格式由程序定义，不能修改。"
    message_en = "The built-in import profile {which} is defined in code and cannot be edited."


class DuplicateProfile(DomainError):
    code = "import_profile_duplicate"
    http_status = 409
    message_zh = "导入配置代码 {which} 已存在。"
    message_en = "The import profile code {which} is already taken."


class InvalidMapping(InvalidInput):
    """A generic profile's column mapping is incomplete or contradictory; names the field."""

    code = "import_mapping_invalid"
    message_zh = "列映射无效（{field}）：{detail_zh}"
    message_en = "The column mapping is invalid ({field}): {detail_en}"
