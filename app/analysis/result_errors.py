"""Refusals of result entry (typed cells, pasted blocks, imports and instrument posts), each with
its code and both languages. Every one changes nothing: `record_results` checks every reading
before it writes any.

A refusal of single readings is collected per row (`RowProblem`) and raised once as
`ResultsRefused`, which lists every bad row with its own code: an analyst fixes them all in one
go, and an import is never half done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.core.errors import DomainError, InvalidInput, NotFound

# ---------------------------------------------------------------- the batch as a whole


class ResultNotFound(NotFound):
    code = "result_not_found"
    message_zh = "未找到结果 {result_id}。"
    message_en = "Result {result_id} not found."


class BatchNotAcceptingResults(DomainError):
    """Results belong to a started batch; a closed batch is finished (DOMAIN.md §3 Batch)."""

    code = "batch_not_running"
    http_status = 409
    message_zh = "分析批 {batch_no} 当前状态为“{state}”：{why_zh}"
    message_en = "Analysis batch {batch_no} is {state}: {why_en}"


class ReasonRequired(InvalidInput):
    """After the analyst signed the batch, any change is a correction of signed data (DESIGN.md
    rule 4; DOMAIN.md §7 A11 keeps it queryable)."""

    code = "reason_required"
    message_zh = "分析批 {batch_no} 已提交（分析人已签名）：修改结果必须填写原因。"
    message_en = "Analysis batch {batch_no} was submitted (signed by the analyst): a correction needs a reason."


class ReasonTooLong(InvalidInput):
    code = "reason_too_long"
    message_zh = "修改原因过长（最多 {limit} 个字符）。"
    message_en = "The reason is too long (at most {limit} characters)."


class NoReadings(InvalidInput):
    code = "no_readings"
    message_zh = "没有要保存的读数。"
    message_en = "There is no reading to save."


class TooManyReadings(InvalidInput):
    code = "too_many_readings"
    message_zh = "一次最多保存 {limit} 个读数（本次 {count} 个）：请分批导入。"
    message_en = "At most {limit} readings at once ({count} given): split them."


class CurveMissing(DomainError):
    code = "curve_missing"
    http_status = 409
    message_zh = "分析批 {batch_no} 尚未为 {parameter} 指定校准曲线：该方法按曲线计算，请先关联曲线。"
    message_en = ("Batch {batch_no} has no calibration curve for {parameter}: the method calculates through a "
                  "curve, attach one first.")


# ---------------------------------------------------------------- single readings


@dataclass(frozen=True)
class RowProblem:
    """Why one reading was refused: `row` is the row of the file, paste or request (1-based),
    `where` names the position (label or number) and the parameter."""

    row: int
    where: str
    parameter: str
    code: str
    message_zh: str
    message_en: str

    def message(self, language: str) -> str:
        text = self.message_zh if language.startswith("zh") else self.message_en
        if language.startswith("zh"):
            return f"第 {self.row} 行（{self.where}，{self.parameter}）：{text}"
        return f"row {self.row} ({self.where}, {self.parameter}): {text}"

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "where": self.where, "parameter": self.parameter, "code": self.code,
                "message_zh": self.message_zh, "message_en": self.message_en}


# code → (zh, en) templates of the row problems; params are formatted in
ROW_PROBLEMS: dict[str, tuple[str, str]] = {
    "position_not_in_batch": ("该位置属于 {other}，不在本分析批中：不能为本批以外的样品录入结果。",
                              "a result for a sample not in the batch: the position belongs to {other}."),
    "parameter_not_in_batch": ("本分析批不测定 {parameter}（本批项目：{parameters}）。",
                               "the batch does not measure {parameter} (its parameters: {parameters})."),
    "wrong_unit": ("单位错误：读数单位为 {given}，应为 {expected}。",
                   "wrong unit: {given} given, {expected} expected."),
    "dilution_below_one": ("稀释倍数 {dilution} 无效：应不小于 1。",
                           "dilution factor {dilution} is invalid: at least 1."),
    "measured_in_future": ("测定时间 {at} 晚于当前时间。", "the time of measurement {at} is in the future."),
    "measured_before_start": ("测定时间 {at} 早于分析批开始时间 {started}。",
                              "the time of measurement {at} is before the batch started ({started})."),
    "same_cell_twice": ("同一位置和项目在本次提交中出现两次（另见第 {other_row} 行）。",
                        "the same position and parameter appear twice (see also row {other_row})."),
    "client_id_reused": ("客户端编号 {client_id} 已用于本批另一读数（{other}），内容不同。",
                         "client id {client_id} was already used in this batch for a different reading ({other})."),
    "client_id_too_long": ("客户端编号过长（最多 64 个字符）。", "the client id is too long (at most 64 characters)."),
    "above_calibration_range": (
        "稀释前浓度 {concentration} {unit} 高于校准曲线最高点 {high} {unit}：请稀释后重新测定。",
        "the concentration before dilution, {concentration} {unit}, is above the top standard of the curve "
        "({high} {unit}): dilute and re-measure."),
    "above_working_range": (
        "稀释前读数 {concentration} {unit} 高于方法测定上限 {high} {unit}：请稀释后重新测定。",
        "the reading before dilution, {concentration} {unit}, is above the method's working range ({high} {unit}): "
        "dilute and re-measure."),
    "blank_missing": ("尚无方法空白的读数：扣除空白的计算需要先录入空白。",
                      "no method blank has a reading yet: the blank-corrected calculation needs the blanks first."),
    "reading_off_curve": ("读数 {reading} 无法通过校准曲线换算为浓度（{why}）。",
                          "the reading {reading} cannot be read back through the curve ({why})."),
    "not_a_number": ("{detail}", "{detail}"),
}


def row_problem(row: int, where: str, parameter: str, code: str, **params: Any) -> RowProblem:
    zh, en = ROW_PROBLEMS[code]
    values = {"parameter": parameter, **{k: str(v) for k, v in params.items()}}
    return RowProblem(row, where, parameter, code, zh.format(**values), en.format(**values))


class ResultsRefused(InvalidInput):
    """One or more readings were refused; nothing was saved. `problems` lists each bad row."""

    code = "results_refused"
    message_zh = "以下读数被拒绝，未保存任何结果：{listing_zh}"
    message_en = "These readings were refused and no result was saved: {listing_en}"
    shown = 20

    def __init__(self, problems: list[RowProblem]) -> None:
        self.problems = problems
        more = len(problems) - self.shown
        listing_zh = "；".join(p.message("zh") for p in problems[: self.shown]) + (
            f"；另有 {more} 行" if more > 0 else "")
        listing_en = "; ".join(p.message("en") for p in problems[: self.shown]) + (
            f"; and {more} more rows" if more > 0 else "")
        super().__init__(listing_zh=listing_zh, listing_en=listing_en)

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.problems]


# ---------------------------------------------------------------- typed and pasted cells


class CellRefused(InvalidInput):
    """A typed or pasted cell that is not a plain decimal number, naming its row and column."""

    code = "cell_refused"
    message_zh = "第 {row} 行“{column}”列的“{value}”{why_zh}"
    message_en = "Row {row}, column “{column}”: “{value}” {why_en}"


class CommaDecimal(CellRefused):
    code = "comma_decimal"
    message_zh = "第 {row} 行“{column}”列的“{value}”含逗号：请用小数点作小数点符号（如 1.5）。"
    message_en = "Row {row}, column “{column}”: “{value}” has a comma: use a point as decimal mark (e.g. 1.5)."


class FormulaInCell(CellRefused):
    code = "formula_in_cell"
    message_zh = "第 {row} 行“{column}”列的“{value}”是公式：只能录入数值，公式不会被计算。"
    message_en = "Row {row}, column “{column}”: “{value}” is a formula: enter the number; formulas are never run."


class NotANumber(CellRefused):
    code = "not_a_number"
    message_zh = ("第 {row} 行“{column}”列的“{value}”不是数值：请录入仪器原始读数（低于检出限的报告方式由系统"
                  "按方法给出）。")
    message_en = ("Row {row}, column “{column}”: “{value}” is not a number: enter the instrument's raw reading "
                  "(below-MDL reporting is applied by the method).")


class TooManyDigits(CellRefused):
    code = "too_many_digits"
    message_zh = "第 {row} 行“{column}”列的数值位数过多（最多 {limit} 位）。"
    message_en = "Row {row}, column “{column}”: the number has too many digits (at most {limit})."


class NumberOutOfRange(CellRefused):
    code = "number_out_of_range"
    message_zh = "第 {row} 行“{column}”列的“{value}”数量级超出仪器读数的合理范围。"
    message_en = "Row {row}, column “{column}”: “{value}” is out of any instrument's range."


class PasteOutsideGrid(InvalidInput):
    code = "paste_outside_grid"
    message_zh = "粘贴的数据块超出表格：第 {row} 行第 {column} 列之后没有对应的单元格。"
    message_en = "The pasted block runs past the grid: row {row}, column {column} has no cell to go into."


class PasteTooLarge(InvalidInput):
    code = "paste_too_large"
    message_zh = "粘贴的数据块过大（最多 {limit} 个单元格）。"
    message_en = "The pasted block is too large (at most {limit} cells)."


class DilutionWithoutReading(InvalidInput):
    code = "dilution_without_reading"
    message_zh = "第 {row} 行“{column}”列：只有稀释倍数而没有读数。"
    message_en = "Row {row}, column “{column}”: a dilution factor without a reading."
