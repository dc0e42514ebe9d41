"""Refusals of methods, their versions, MDL studies and qualifications (上岗证), each with its
code and both languages. Every one changes nothing: services raise them before writing."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound

# ---------------------------------------------------------------- methods


class MethodNotFound(NotFound):
    code = "method_not_found"
    message_zh = "找不到方法 {method}。"
    message_en = "No method {method}."


class MethodCodeWithoutYear(InvalidInput):
    code = "method_code_without_year"
    message_zh = "方法编号须写明标准号及年号，例如 HJ 535-2009、GB 11893-89、HJ/T 91-2002：{method}"
    message_en = "Give the method standard with its year, e.g. HJ 535-2009, GB 11893-89, HJ/T 91-2002: {method}"


class MethodCodeTaken(DomainError):
    code = "method_code_taken"
    http_status = 409
    message_zh = "方法 {method} 已登记；标准内容变化请新建版本。"
    message_en = "Method {method} is already registered; record a change as a new version."


class MatrixUnknown(InvalidInput):
    code = "method_matrix_unknown"
    message_zh = "介质无效：{matrix}（应为 water 水、air 空气、soil 土壤或 other 其他）。"
    message_en = "Unknown matrix {matrix}: water, air, soil or other."


class ParametersRequired(InvalidInput):
    code = "method_parameters_required"
    message_zh = "方法至少须有一个检测项目（项目、单位、检出限、修约规则）。"
    message_en = "A method measures at least one parameter (parameter, unit, MDL, reporting rule)."


class ParameterRepeated(InvalidInput):
    code = "method_parameter_repeated"
    message_zh = "检测项目 {parameter} 在同一版本中出现了两次。"
    message_en = "Parameter {parameter} appears twice in the version."


class MdlNotPositive(InvalidInput):
    code = "method_mdl_not_positive"
    message_zh = "{parameter} 的方法检出限须大于零：{value}。（直读项目如 pH 请选择“无检出限”）"
    message_en = ("The MDL of {parameter} must be greater than zero: {value}. (For a direct reading such as pH, "
                  "choose \"no detection limit\".)")


class MdlNotApplicable(InvalidInput):
    code = "method_mdl_not_applicable"
    message_zh = "{parameter} 设为“无检出限”（直读项目），检出限须为 0 或留空：{value}。"
    message_en = "{parameter} is a direct reading with no detection limit: leave the MDL empty or 0, not {value}."


class ReportingRuleInvalid(InvalidInput):
    code = "method_reporting_rule"
    message_zh = "{parameter} 的修约规则须二选一：小数位数（0–6）或有效数字位数（1–6）。"
    message_en = "{parameter} is reported to either decimal places (0–6) or significant figures (1–6), one of them."


class LimitsInvalid(InvalidInput):
    code = "method_limits_invalid"
    message_zh = "{parameter} 的测定范围无效：测定下限不得低于检出限，测定上限须高于测定下限。"
    message_en = ("The working range of {parameter} is invalid: the lower limit may not be below the MDL, and the "
                  "upper limit must be above the lower limit.")


class BelowMdlStyleUnknown(InvalidInput):
    code = "method_below_mdl_style_unknown"
    message_zh = "低于检出限的报告方式无效：{style}。"
    message_en = "Unknown way of reporting below the MDL: {style}."


class CalculationUnknown(InvalidInput):
    code = "method_calculation_unknown"
    message_zh = "计算方式无效：{calculation}。"
    message_en = "Unknown calculation: {calculation}."


class CurveKindUnknown(InvalidInput):
    code = "method_curve_kind_unknown"
    message_zh = "校准曲线类型无效：{kind}（应为 linear 线性或 quadratic 二次）。"
    message_en = "Unknown calibration curve kind {kind}: linear or quadratic."


class QcRequirementOutOfRange(InvalidInput):
    code = "method_qc_out_of_range"
    message_zh = "质控要求“{field_zh}”应在 {low} 至 {high} 之间：{value}。"
    message_en = "The QC requirement “{field_en}” must be between {low} and {high}: {value}."


class RecoveryRangeInvalid(InvalidInput):
    code = "method_recovery_range_invalid"
    message_zh = "加标回收率范围无效：下限 {low}% 须低于上限 {high}%。"
    message_en = "Invalid spike recovery range: the low end {low}% must be below the high end {high}%."


class RdLimitsInvalid(InvalidInput):
    code = "method_rd_limits_invalid"
    message_zh = "平行双样相对偏差限值无效（每行：浓度水平 最大相对偏差%，水平 ≥ 0，偏差在 0–100 之间）：{detail}"
    message_en = ("Invalid duplicate RD limits (one line each: level, max RD %; level ≥ 0, RD between 0 and 100): "
                  "{detail}")


class InstrumentUnknown(InvalidInput):
    code = "method_instrument_unknown"
    message_zh = "找不到仪器 {asset_no}：请填写已登记仪器的资产编号。"
    message_en = "No instrument {asset_no}: give the asset number of a registered instrument."


class MethodNotActive(DomainError):
    code = "method_not_active"
    http_status = 409
    message_zh = "方法 {method} 已{state_zh}，不能再修改或授权。"
    message_en = "Method {method} is {state_en}; it can no longer be changed or granted."


class VersionRetroactive(DomainError):
    code = "method_version_retroactive"
    http_status = 422
    message_zh = ("新版本的生效时间 {valid_from} 不能早于现在，也须晚于上一版本的生效时间 {previous}："
                  "方法版本不能追溯生效。")
    message_en = ("A new version cannot take effect in the past: {valid_from} must be now or later, and after the "
                  "previous version's start ({previous}).")


class MethodNotInForce(DomainError):
    code = "method_not_in_force"
    http_status = 409
    message_zh = "方法 {method} 在 {at} 没有有效版本（尚未生效、已作废或已被替代）。"
    message_en = "Method {method} has no version in force at {at} (not yet in force, withdrawn or superseded)."


class InstrumentNotAllowed(DomainError):
    code = "instrument_not_allowed_for_method"
    http_status = 409
    message_zh = "仪器 {asset_no} 不在方法 {method}（第 {version} 版）允许使用的仪器之列。"
    message_en = "Instrument {asset_no} is not among the instruments method {method} (version {version}) allows."


# ---------------------------------------------------------------- MDL studies


class MdlParameterUnknown(InvalidInput):
    code = "mdl_parameter_unknown"
    message_zh = "方法 {method} 第 {version} 版不测定 {parameter}。"
    message_en = "Method {method} version {version} does not measure {parameter}."


class MdlUnitMismatch(InvalidInput):
    code = "mdl_unit_mismatch"
    message_zh = "检出限验证的单位 {unit} 与方法中 {parameter} 的单位 {expected} 不一致。"
    message_en = "The study's unit {unit} is not the method's unit of {parameter} ({expected})."


class MdlReplicateInvalid(InvalidInput):
    code = "mdl_replicate_invalid"
    message_zh = "第 {position} 个平行测定值不是有效数字：{value}。请每行一个或用空格分隔，小数点用“.”。"
    message_en = ("Replicate {position} is not a valid number: {value}. Give one per line or separated by spaces, "
                  "with a point as the decimal mark.")


class MdlCommaDecimal(InvalidInput):
    code = "mdl_comma_decimal"
    message_zh = "第 {position} 个平行测定值 {value} 含逗号：小数点请用“.”，数值之间用空格或换行分隔。"
    message_en = ("Replicate {position} ({value}) contains a comma: use a point as the decimal mark and separate "
                  "values by spaces or lines.")


class MdlTooFewReplicates(InvalidInput):
    code = "mdl_too_few_replicates"
    message_zh = "检出限验证至少需要 7 个平行测定值（HJ 168-2020），现有 {n} 个。"
    message_en = "An MDL study needs at least 7 replicates (HJ 168-2020); {n} given."


class MdlTooManyReplicates(InvalidInput):
    code = "mdl_too_many_replicates"
    message_zh = "平行测定值过多：最多 {limit} 个，现有 {n} 个。"
    message_en = "Too many replicates: at most {limit}, {n} given."


class MdlNoSpread(InvalidInput):
    code = "mdl_no_spread"
    message_zh = ("{n} 个平行测定值完全相同，标准偏差为 0，无法计算检出限：请核对数据，"
                  "并选用接近检出限浓度、经全程序测定的样品。")
    message_en = ("All {n} replicates are equal: their standard deviation is 0 and no MDL can be computed. Check the "
                  "data; use a low-level sample carried through the whole procedure.")


# ---------------------------------------------------------------- qualifications (上岗证)


class QualificationNotFound(NotFound):
    code = "qualification_not_found"
    message_zh = "找不到上岗证记录 {qualification}。"
    message_en = "No qualification {qualification}."


class PersonNotFound(NotFound):
    code = "qualification_person_not_found"
    message_zh = "找不到人员 {person}。"
    message_en = "No person {person}."


class QualificationToSelf(DomainError):
    code = "qualification_to_self"
    http_status = 403
    message_zh = "不能给自己授予上岗证：须由另一位技术负责人授予。"
    message_en = "You cannot grant a qualification to yourself; another technical manager must."


class QualificationDatesInvalid(InvalidInput):
    code = "qualification_dates_invalid"
    message_zh = "上岗证有效期无效：截止日期 {valid_to} 须晚于起始日期 {valid_from}。"
    message_en = "Invalid period: the end {valid_to} must be after the start {valid_from}."


class QualificationNeedsBenchRole(DomainError):
    code = "qualification_needs_bench_role"
    http_status = 409
    message_zh = "{person} 目前不具有分析员、校核人、审核人或采样员角色，不能授予上岗证。"
    message_en = "{person} holds no analyst, checker, reviewer or sampler role now; no qualification can be granted."


class PersonInactive(DomainError):
    code = "qualification_person_inactive"
    http_status = 409
    message_zh = "{person} 的账号已停用，不能授予上岗证。"
    message_en = "{person}'s account is deactivated; no qualification can be granted."


class QualificationAlreadyRevoked(DomainError):
    code = "qualification_already_revoked"
    http_status = 409
    message_zh = "上岗证 {certificate_no} 已于 {revoked_at} 撤销。"
    message_en = "Qualification {certificate_no} was already revoked on {revoked_at}."


class AnalystNotQualified(DomainError):
    """DOMAIN.md §2 rule 3: a valid 上岗证 for the method on the day of the act."""

    code = "analyst_not_qualified"
    http_status = 409
    message_zh = "{person} 在 {day} 没有方法 {method} 的有效上岗证，不能从事该项分析或校核（持证上岗）。"
    message_en = ("{person} holds no valid qualification (上岗证) for method {method} on {day}; they may not "
                  "analyse or check by it.")


class CertificateScanAltered(DomainError):
    """The scan's bytes no longer hash to the SHA-256 recorded at upload: never serve them."""

    code = "qualification_scan_altered"
    http_status = 409
    message_zh = "上岗证扫描件已缺失或被改动（SHA-256 不再一致），不能提供。请联系质量负责人。"
    message_en = ("The certificate's scan is missing or has been altered (its SHA-256 no longer matches) and cannot "
                  "be served. Tell the quality manager.")
