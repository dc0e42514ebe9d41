"""Refusals of calibration curves and control charts, each with its code and both languages.
Every one changes nothing: services raise them before writing (a curve that misses its
acceptance is not a refusal: it is recorded as rejected)."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound

# ---------------------------------------------------------------- finding things


class CurveNotFound(NotFound):
    code = "curve_not_found"
    message_zh = "找不到校准曲线 {curve}。"
    message_en = "No calibration curve {curve}."


class CurveParameterNotInMethod(DomainError):
    code = "curve_parameter_not_in_method"
    http_status = 422
    message_zh = "方法 {method}（第 {version} 版）不测定 {parameter}；该版本的项目：{parameters}。"
    message_en = "Method {method} (version {version}) does not measure {parameter}; it measures: {parameters}."


class CurveInstrumentNotFound(NotFound):
    code = "curve_instrument_not_found"
    message_zh = "找不到仪器 {asset_no}。"
    message_en = "No instrument {asset_no}."


class CurveKindNotAllowed(DomainError):
    code = "curve_kind_not_allowed"
    http_status = 422
    message_zh = "方法 {method} 不允许“{kind}”校准曲线；允许：{allowed}。"
    message_en = "Method {method} does not allow a {kind} curve; allowed: {allowed}."


# ---------------------------------------------------------------- the points


class CurveCellRequired(InvalidInput):
    code = "curve_cell_required"
    message_zh = "第 {row} 行“{column_zh}”未填写。"
    message_en = "Row {row}: {column_en} is empty."


class CurveCellNotANumber(InvalidInput):
    code = "curve_cell_not_a_number"
    message_zh = "第 {row} 行“{column_zh}”不是有效数字：{value}。"
    message_en = "Row {row}: {column_en} is not a valid number: {value}."


class CurveCellCommaDecimal(InvalidInput):
    code = "curve_cell_comma_decimal"
    message_zh = "第 {row} 行“{column_zh}”含逗号：{value}。小数点请用“.”（如 1.5），不要用“,”。"
    message_en = "Row {row}: {column_en} has a comma: {value}. Write the decimal point as “.” (1.5), not “,”."


class CurveLevelInvalid(InvalidInput):
    code = "curve_level_invalid"
    message_zh = "第 {row} 行的序号无效：{value}（应为 0–99 的整数，0 为零浓度点）。"
    message_en = "Row {row}: the level is not valid: {value} (a whole number 0–99; 0 is the zero standard)."


class CurveLevelRepeated(InvalidInput):
    code = "curve_level_repeated"
    message_zh = "序号 {level} 重复出现（第 {rows} 行）。"
    message_en = "Level {level} appears more than once (rows {rows})."


class CurveConcentrationNegative(InvalidInput):
    code = "curve_concentration_negative"
    message_zh = "第 {row} 行的浓度为负：{value}。"
    message_en = "Row {row}: the concentration is negative: {value}."


class CurveConcentrationsNotIncreasing(InvalidInput):
    code = "curve_concentrations_not_increasing"
    message_zh = "按序号排列，浓度须逐级递增：序号 {level} 的 {value} 不大于前一级的 {previous}。"
    message_en = ("In level order the concentrations must increase: level {level} has {value}, not more than "
                  "the level before ({previous}).")


class CurveTooFewPoints(InvalidInput):
    code = "curve_too_few_points"
    message_zh = "{kind_zh}校准曲线至少需要 {minimum} 个不同浓度的点，现有 {count} 个。"
    message_en = "A {kind_en} curve needs at least {minimum} points of different concentration; there are {count}."


class CurveTooManyPoints(InvalidInput):
    code = "curve_too_many_points"
    message_zh = "一条校准曲线最多 {maximum} 个点。"
    message_en = "A calibration curve has at most {maximum} points."


class CurveResponsesFlat(InvalidInput):
    code = "curve_responses_flat"
    message_zh = "所有点的响应值相同，无法拟合校准曲线。"
    message_en = "Every point has the same response: no curve can be fitted."


class CurveStandardRequired(InvalidInput):
    code = "curve_standard_required"
    message_zh = "第 {row} 行（序号 {level}）未填写所用标准溶液的条码。"
    message_en = "Row {row} (level {level}): scan or type the barcode of the standard solution used."


# ---------------------------------------------------------------- the gate


class CurveNotUsable(DomainError):
    """The curve gate's refusal; `reason` is the machine-readable cause."""

    code = "curve_not_usable"
    reason = "not_usable"
    http_status = 409
    message_zh = "校准曲线 {curve} 在 {at} 不可使用。"
    message_en = "Calibration curve {curve} could not be used at {at}."


class CurveRejected(CurveNotUsable):
    reason = "rejected"
    message_zh = "校准曲线 {curve} 未通过验收（{rejection}），不能使用。"
    message_en = "Calibration curve {curve} failed its acceptance ({rejection}) and cannot be used."


class CurveExpired(CurveNotUsable):
    reason = "expired"
    message_zh = "校准曲线 {curve} 有效至 {valid_until}，{at} 已过期，请重新绘制。"
    message_en = "Calibration curve {curve} was valid until {valid_until}; at {at} it had expired. Make a new one."


class CurveMadeAfter(CurveNotUsable):
    reason = "made_after"
    message_zh = "校准曲线 {curve} 绘制于 {measured_at}，晚于 {at}：分析不能使用其后才绘制的曲线。"
    message_en = "Calibration curve {curve} was made at {measured_at}, after {at}: an analysis cannot use it."


class CurveOtherMethod(CurveNotUsable):
    reason = "other_method"
    message_zh = "校准曲线 {curve} 属于方法 {curve_method}，不是本批所用的方法版本。"
    message_en = "Calibration curve {curve} belongs to {curve_method}, not to the method version used here."


class CurveOtherParameter(CurveNotUsable):
    reason = "other_parameter"
    message_zh = "校准曲线 {curve} 是 {curve_parameter} 的曲线，不能用于 {parameter}。"
    message_en = "Calibration curve {curve} is for {curve_parameter}, not for {parameter}."


# ---------------------------------------------------------------- control charts


class ChartKindUnknown(InvalidInput):
    code = "chart_kind_unknown"
    message_zh = "质控类型无效：{kind}（blank、duplicate、spike、crm、ccv 或 curve）。"
    message_en = "Unknown QC kind {kind}: blank, duplicate, spike, crm, ccv or curve."


class BaselineTooFewPoints(DomainError):
    code = "baseline_too_few_points"
    http_status = 422
    message_zh = "控制图基线至少需要 {minimum} 个点，所选只有 {count} 个。"
    message_en = "A control-chart baseline needs at least {minimum} points; {count} were chosen."


class BaselinePointNotInChart(DomainError):
    code = "baseline_point_not_in_chart"
    http_status = 422
    message_zh = "所选的质控结果 {ids} 不是本控制图（{method} {parameter} {kind}）的点。"
    message_en = "The QC results {ids} chosen are not points of this chart ({method} {parameter} {kind})."


class BaselineNoSpread(DomainError):
    code = "baseline_no_spread"
    http_status = 422
    message_zh = "所选基线各点数值完全相同，标准偏差为零，无法确定控制限。"
    message_en = "Every point of the chosen baseline has the same value: with no spread there are no limits."


class BaselineChoiceInvalid(InvalidInput):
    code = "baseline_choice_invalid"
    message_zh = "请选择基线：前 N 个点（N ≥ {minimum}），或起止日期。{detail}"
    message_en = "Choose the baseline: the first N points (N ≥ {minimum}) or a date range. {detail}"
