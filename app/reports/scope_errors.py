"""Refusals of the CMA accreditation scope and of signatory scopes (授权签字人), each with its code
and both languages. Services raise them before writing anything: a refusal changes nothing."""

from __future__ import annotations

from typing import Any

from app.core.errors import DomainError, InvalidInput, NotFound

# ---------------------------------------------------------------- the gate (DOMAIN.md §2 rule 2)


class SignatoryOutOfScope(DomainError):
    code = "signatory_out_of_scope"
    http_status = 409
    message_zh = "{person} 在 {day} 没有签发以下项目的授权签字人范围：{items_zh}。"
    message_en = "{person} holds no signatory scope on {day} for: {items_en}."


# ---------------------------------------------------------------- CMA certificate and items


class CertificateNotFound(NotFound):
    code = "cma_certificate_not_found"
    message_zh = "找不到资质认定证书记录 {certificate}。"
    message_en = "No CMA certificate record {certificate}."


class CertificateNumberInvalid(InvalidInput):
    code = "cma_certificate_no_invalid"
    message_zh = "资质认定证书编号须为 12 位数字：{certificate_no}"
    message_en = "A CMA certificate number is 12 digits: {certificate_no}"


class CertificateDatesInvalid(InvalidInput):
    code = "cma_certificate_dates_invalid"
    message_zh = "证书有效期截止日期（{valid_to}）须晚于起始日期（{valid_from}）。"
    message_en = "The certificate's end of validity ({valid_to}) must be after its start ({valid_from})."


class CertificateAlreadyRecorded(DomainError):
    code = "cma_certificate_recorded"
    http_status = 409
    message_zh = ("证书 {certificate_no} 已登记（记录 #{record}）。如需更正其项目，请以“更正”方式重新登记该证书，"
                  "并导入完整、正确的项目清单。")
    message_en = ("Certificate {certificate_no} is already recorded (record #{record}). To correct its items, record "
                  "it again as a correction with the full, correct list of items.")


class CertificateReplaced(DomainError):
    code = "cma_certificate_replaced"
    http_status = 409
    message_zh = "证书记录 {certificate_no}（#{record}）已被同号的新记录 #{replacement} 取代，不能再添加项目。"
    message_en = ("Certificate record {certificate_no} (#{record}) was replaced by the newer record "
                  "#{replacement} of the same number; items cannot be added to it.")


class MethodCodeYearMissing(InvalidInput):
    code = "cma_method_code_year"
    message_zh = "方法须写明标准号及年号（2 位或 4 位），例如 HJ 535-2009、GB 7467-87、HJ/T 195-2005：{method}"
    message_en = ("Give the method standard with its year (2 or 4 digits), e.g. HJ 535-2009, GB 7467-87, "
                  "HJ/T 195-2005: {method}")


class MatrixInvalid(InvalidInput):
    code = "cma_matrix_invalid"
    message_zh = "介质无效：{matrix}（应为 water 水、air 空气、soil 土壤或 other 其他）。"
    message_en = "Unknown matrix {matrix}: water, air, soil or other."


class FormulaCell(InvalidInput):
    code = "cma_formula_cell"
    message_zh = "{field_zh}不能以 =、+、-、@ 开头（疑似表格公式，不会被执行）：{value}"
    message_en = "{field_en} may not begin with =, +, - or @ (it looks like a spreadsheet formula): {value}"


class ItemAlreadyOnCertificate(DomainError):
    code = "cma_item_duplicate"
    http_status = 409
    message_zh = "证书 {certificate_no} 已包含 {item_zh}。"
    message_en = "Certificate {certificate_no} already holds {item_en}."


class CsvRefused(InvalidInput):
    """The CSV import refused as a whole: every problem with its line number, nothing saved."""

    code = "cma_csv_refused"
    message_zh = "CSV 未导入（未保存任何项目），共 {count} 处问题：{summary}"
    message_en = "The CSV was not imported (nothing saved); {count} problem(s): {summary}"

    def __init__(self, problems: list[tuple[int, DomainError]], **params: Any) -> None:
        self.problems = problems
        self.count = len(problems)
        shown = problems[:5]
        more_zh = f" 等（另 {len(problems) - 5} 处）" if len(problems) > 5 else ""
        more_en = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        super().__init__(
            message_zh=self.message_zh.replace("{summary}", "；".join(
                f"第 {n} 行：{e.message('zh')}" for n, e in shown).replace("{", "{{").replace("}", "}}") + more_zh),
            message_en=self.message_en.replace("{summary}", "; ".join(
                f"line {n}: {e.message('en')}" for n, e in shown).replace("{", "{{").replace("}", "}}") + more_en),
            count=len(problems), **params)

    def headline(self, language: str) -> str:
        """The message without the lines, for a page that lists every line below it."""
        if language.startswith("zh"):
            return f"CSV 未导入（未保存任何项目），共 {self.count} 处问题："
        return f"The CSV was not imported (nothing saved); {self.count} problem(s):"


class CsvTooLarge(InvalidInput):
    code = "cma_csv_too_large"
    message_zh = "CSV 文件过大（上限 {limit_kb} KB）。"
    message_en = "The CSV file is too large (limit {limit_kb} KB)."


class CsvUnreadable(InvalidInput):
    code = "cma_csv_unreadable"
    message_zh = "无法解析该行：{detail}"
    message_en = "The line cannot be read: {detail}"


class CsvEncodingUnknown(InvalidInput):
    code = "cma_csv_encoding"
    message_zh = "无法读取 CSV 文件的编码：请保存为 UTF-8（可带 BOM）或 GBK。"
    message_en = "The CSV file's encoding could not be read: save it as UTF-8 (with or without BOM) or GBK."


class CsvHeaderMissing(InvalidInput):
    code = "cma_csv_header"
    message_zh = "CSV 第一行须为表头，包含 parameter、method_code、matrix 三列（缺少：{missing}）。"
    message_en = "The CSV's first line must be a header with parameter, method_code and matrix (missing: {missing})."


class CsvTooLong(InvalidInput):
    code = "cma_csv_too_long"
    message_zh = "CSV 最多 {limit} 行项目（本文件 {lines} 行），请分批导入。"
    message_en = "A CSV holds at most {limit} item lines (this one has {lines}); import it in parts."


class CsvEmpty(InvalidInput):
    code = "cma_csv_empty"
    message_zh = "CSV 文件中没有任何项目。"
    message_en = "The CSV file holds no items."


class CsvLineMalformed(InvalidInput):
    code = "cma_csv_line"
    message_zh = "该行应有 {expected} 列，实有 {found} 列。"
    message_en = "The line should have {expected} columns; it has {found}."


class CsvDuplicateLine(InvalidInput):
    code = "cma_csv_duplicate"
    message_zh = "{item_zh} 与第 {first} 行重复。"
    message_en = "{item_en} repeats line {first}."


# ---------------------------------------------------------------- signatory scopes


class ScopeNotFound(NotFound):
    code = "signatory_scope_not_found"
    message_zh = "找不到授权签字人范围 #{scope}。"
    message_en = "No signatory scope #{scope}."


class PersonNotFound(NotFound):
    code = "signatory_person_not_found"
    message_zh = "找不到人员 {person}。"
    message_en = "No person {person}."


class PersonNotSignatory(DomainError):
    code = "signatory_role_missing"
    http_status = 409
    message_zh = "{person} 在 {day} 不持有授权签字人角色，不能为其设定签字范围。"
    message_en = "{person} does not hold the signatory role on {day}; a signatory scope cannot be proposed."


class PersonInactive(DomainError):
    code = "signatory_person_inactive"
    http_status = 409
    message_zh = "{person} 的账户已停用。"
    message_en = "{person}'s account is deactivated."


class ScopeMethodNotFound(NotFound):
    code = "signatory_method_not_found"
    message_zh = "找不到方法 {method}。"
    message_en = "No method {method}."


class ScopeMatrixMismatch(InvalidInput):
    code = "signatory_scope_matrix_mismatch"
    message_zh = "方法 {method} 用于{method_matrix_zh}，与所选介质{matrix_zh}不符。"
    message_en = "Method {method} is for {method_matrix_en}, not {matrix_en}."


class ScopeParameterUnknown(InvalidInput):
    code = "signatory_scope_parameter_unknown"
    message_zh = "方法 {method} 不测定项目 {parameter}。"
    message_en = "Method {method} does not measure {parameter}."


class ScopeDatesInvalid(InvalidInput):
    code = "signatory_scope_dates_invalid"
    message_zh = "签字范围的截止日期（{valid_to}）不能早于起始日期（{valid_from}）。"
    message_en = "The scope's end of validity ({valid_to}) cannot be before its start ({valid_from})."


class ScopeDuplicate(DomainError):
    code = "signatory_scope_duplicate"
    http_status = 409
    message_zh = "{person} 已有相同且期间重叠的签字范围 #{scope}（{state_zh}）。"
    message_en = "{person} already has the same scope for an overlapping period: #{scope} ({state_en})."


class ScopeAlreadyApproved(DomainError):
    code = "signatory_scope_already_approved"
    http_status = 409
    message_zh = "签字范围 #{scope} 已于 {at} 批准。"
    message_en = "Signatory scope #{scope} was already approved on {at}."


class ScopeAlreadyEnded(DomainError):
    code = "signatory_scope_ended"
    http_status = 409
    message_zh = "签字范围 #{scope} 已终止（{on}）。"
    message_en = "Signatory scope #{scope} has been ended ({on})."


class ScopeApproverIsProposer(DomainError):
    code = "signatory_scope_self_approval"
    http_status = 409
    message_zh = "签字范围须由提议人以外的人批准：#{scope} 由您提议。"
    message_en = "A signatory scope is approved by someone other than its proposer: you proposed #{scope}."


class ScopeApproverIsSignatory(DomainError):
    code = "signatory_scope_own"
    http_status = 409
    message_zh = "不能批准授予自己的签字范围 #{scope}。"
    message_en = "You cannot approve a signatory scope granted to yourself (#{scope})."


class ScopeExpired(DomainError):
    code = "signatory_scope_expired"
    http_status = 409
    message_zh = "签字范围 #{scope} 已于 {valid_to} 到期，不能再批准。"
    message_en = "Signatory scope #{scope} expired on {valid_to}; it can no longer be approved."


class EndDateInPast(InvalidInput):
    code = "signatory_scope_end_in_past"
    message_zh = "终止日期 {on} 早于今天（{today}）：已签发的报告不能被追溯为超范围。"
    message_en = "The end date {on} is before today ({today}): reports already approved cannot be made out of scope."
