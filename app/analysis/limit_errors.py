"""Refusals of evaluation standards (limit sets, permit limits, site assignments), each with its
code and both languages. Every one changes nothing: services raise them before writing."""

from __future__ import annotations

from app.core.errors import DomainError, InvalidInput, NotFound


class LimitSetNotFound(NotFound):
    code = "limit_set_not_found"
    message_zh = "未找到评价标准 {standard}。"
    message_en = "Evaluation standard {standard} not found."


class LimitSetNotInForce(DomainError):
    code = "limit_set_not_in_force"
    http_status = 409
    message_zh = "评价标准 {standard} 在 {on} 没有现行版本。"
    message_en = "Evaluation standard {standard} has no version in force on {on}."


class LimitSetCodeInvalid(InvalidInput):
    code = "limit_set_code_invalid"
    message_zh = "标准编号“{standard}”无效：请用 1–60 个字符（字母、数字、空格、- . _ ( )），不含斜杠。"
    message_en = ("The standard code “{standard}” is not valid: use 1–60 characters (letters, digits, spaces, "
                  "- . _ ( )), no slash.")


class LimitSetKindUnknown(InvalidInput):
    code = "limit_set_kind_unknown"
    message_zh = "评价标准类别“{kind}”无效：请选地表水、环境空气或排放限值。"
    message_en = "Unknown kind of standard “{kind}”: choose surface water, ambient air or discharge."


class LimitSetClassesInvalid(InvalidInput):
    code = "limit_set_classes_invalid"
    message_zh = "类别表无效：{detail_zh}。"
    message_en = "The classes are not valid: {detail_en}."


class LimitSetNameRequired(InvalidInput):
    code = "limit_set_name_required"
    message_zh = "请填写评价标准的中文名称（不超过 200 个字符）。"
    message_en = "Give the standard's Chinese name (up to 200 characters)."


class LimitSetBackdated(DomainError):
    code = "limit_set_backdated"
    http_status = 409
    message_zh = ("评价标准 {standard} 第 {version} 版自 {valid_from} 起执行，新版本的执行日期 {new_from} 不能早于它："
                  "已按旧版本作出的评价不能被改写。")
    message_en = ("Version {version} of {standard} is in force from {valid_from}; a new version cannot start earlier "
                  "({new_from}): evaluations made under the old version must keep it.")


class LimitDateInvalid(InvalidInput):
    code = "limit_date_invalid"
    message_zh = "执行日期“{value}”无效：请按 2026-01-01 的格式填写。"
    message_en = "The date in force “{value}” is not valid: write it as 2026-01-01."


class LimitRowsRequired(InvalidInput):
    code = "limit_rows_required"
    message_zh = "没有限值行：请至少给出一项的限值。"
    message_en = "No limit rows: give at least one parameter's limit."


class TooManyLimitRows(InvalidInput):
    code = "too_many_limit_rows"
    message_zh = "限值行过多（{count} 行，最多 {limit} 行）。"
    message_en = "Too many limit rows ({count}; at most {limit})."


class LimitRowInvalid(InvalidInput):
    """One cell of one row is wrong; the message names both, as the lab sees them in the file."""

    code = "limit_row_invalid"
    message_zh = "第 {row} 行“{column}”列：{detail_zh}。"
    message_en = "Row {row}, column “{column}”: {detail_en}."


class LimitRowDuplicate(InvalidInput):
    code = "limit_row_duplicate"
    message_zh = "第 {row} 行重复：{parameter} 的 {class_label} 类限值已在第 {first} 行给出。"
    message_en = "Row {row} repeats row {first}: the limit of {parameter} for class {class_label}."


class LimitFileInvalid(InvalidInput):
    code = "limit_file_invalid"
    message_zh = "限值文件无法读取：{detail_zh}。"
    message_en = "The limit file cannot be read: {detail_en}."


class LimitNeedsAPerson(DomainError):
    code = "limit_needs_a_person"
    http_status = 409
    message_zh = "系统中还没有任何用户：内置评价标准须记在一名用户名下，请先创建用户（lims user add）。"
    message_en = "There are no users yet: built-in standards are recorded under a user; add one first (lims user add)."


class SiteNotFound(NotFound):
    code = "limit_site_not_found"
    message_zh = "未找到点位 {site}。"
    message_en = "Site {site} not found."


class TargetClassUnknown(InvalidInput):
    code = "target_class_unknown"
    message_zh = "目标类别“{target}”不在评价标准 {standard} 的类别中（{classes}）。"
    message_en = "Target class “{target}” is not a class of {standard} ({classes})."


class LimitSetWrongKindForSite(DomainError):
    code = "limit_set_wrong_kind_for_site"
    http_status = 409
    message_zh = "点位 {site} 是{site_kind_zh}点位，不能用{set_kind_zh}标准 {standard} 评价。"
    message_en = ("Site {site} is a {site_kind_en} site; it cannot be evaluated against the {set_kind_en} "
                  "standard {standard}.")
