"""Cleaning what custodians, analysts and scanners send, shared by custody, receipt, storage and
preparation: text with limits, Decimals (never floats), times of acts, temperatures.

Every refusal names the field in both languages and changes nothing (non-negotiable 4).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.errors import DomainError, InvalidInput
from app.core.labtime import lab_calendar

FUTURE_TOLERANCE = timedelta(minutes=5)  # a scanner's clock may run a little ahead
# The range a sample's temperature can have in a cooler, a fridge or a room: beyond it the
# number was typed in the wrong unit or is a typo (a freezer at -20 °C is inside).
PLAUSIBLE_C = (Decimal("-40"), Decimal("60"))
ABSOLUTE_ZERO_C = Decimal("-273.15")
CELSIUS = {"°C", "℃", "C", "DEGC", "CELSIUS", "摄氏度", ""}
KELVIN = {"K", "KELVIN"}
FAHRENHEIT = {"°F", "℉", "F", "DEGF", "FAHRENHEIT", "华氏度"}


class FieldRequired(InvalidInput):
    code = "field_required"
    message_zh = "请填写{field_zh}。"
    message_en = "{field_en} is required."


class FieldTooLong(InvalidInput):
    code = "field_too_long"
    message_zh = "{field_zh}过长：最多 {limit} 个字符。"
    message_en = "{field_en} is too long: at most {limit} characters."


class NotANumber(InvalidInput):
    code = "not_a_number"
    message_zh = "{field_zh}不是有效数字：{value}。"
    message_en = "{field_en} is not a valid number: {value}."


class NotPositive(InvalidInput):
    code = "not_positive"
    message_zh = "{field_zh}必须大于零：{value}。"
    message_en = "{field_en} must be greater than zero: {value}."


class InvalidActTime(InvalidInput):
    code = "invalid_act_time"
    message_zh = "{field_zh}无效：{value}。请使用 2026-05-01T09:30（实验室当地时间）或带时区的 ISO 8601 时间。"
    message_en = ("{field_en} is not a valid time: {value}. Use 2026-05-01T09:30 (lab local time) or an ISO 8601 "
                  "time with its offset.")


class ActInFuture(DomainError):
    code = "act_in_future"
    http_status = 422
    message_zh = "{field_zh} {at} 晚于现在（{now}）：不能记录尚未发生的事。"
    message_en = "{field_en} {at} is later than now ({now}): an act cannot be recorded before it happens."


class ActBeforeSampling(DomainError):
    code = "act_before_sampling"
    http_status = 422
    message_zh = "{field_zh} {at} 早于样品 {sample_no} 的采样时间 {sampled}：请核对时间。"
    message_en = "{field_en} {at} is before sample {sample_no} was taken ({sampled}): check the time."


class UnknownTemperatureUnit(InvalidInput):
    code = "unknown_temperature_unit"
    message_zh = "温度单位无效：{unit}。请使用 °C（也接受 K 和 °F，会换算为 °C）。"
    message_en = "Unknown temperature unit {unit}. Use °C (K and °F are accepted and converted to °C)."


class TemperatureOutOfRange(InvalidInput):
    code = "temperature_out_of_range"
    message_zh = ("{field_zh} {value} 不在样品可能的温度范围（-40 至 60 °C）内：是否单位有误"
                  "（例如把 K 或 °F 当作 °C）？")
    message_en = ("{field_en} {value} is outside any temperature a sample can have (-40 to 60 °C): was it given "
                  "in another unit (K or °F as °C)?")


def text(value: Any, field_zh: str, field_en: str, limit: int, *, required: bool = False) -> str:
    cleaned = (value if isinstance(value, str) else "" if value is None else str(value)).strip()
    if "\x00" in cleaned:
        raise InvalidInput(detail=f"{field_en} contains a NUL character")
    if required and not cleaned:
        raise FieldRequired(field_zh=field_zh, field_en=field_en)
    if len(cleaned) > limit:
        raise FieldTooLong(field_zh=field_zh, field_en=field_en, limit=limit)
    return cleaned


def decimal(value: Any, field_zh: str, field_en: str, *, required: bool = False,
            positive: bool = False) -> Decimal | None:
    """A finite Decimal from a Decimal, an int or text ("1,5" read as 1.5); floats are refused."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FieldRequired(field_zh=field_zh, field_en=field_en)
        return None
    if isinstance(value, (bool, float)):
        raise NotANumber(field_zh=field_zh, field_en=field_en, value=str(value)[:30])
    shown = str(value).strip()[:30]
    try:
        number = Decimal(value) if isinstance(value, (Decimal, int)) else Decimal(str(value).strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        raise NotANumber(field_zh=field_zh, field_en=field_en, value=shown) from None
    if not number.is_finite() or abs(number) >= Decimal("1e12"):
        raise NotANumber(field_zh=field_zh, field_en=field_en, value=shown)
    if positive and number <= 0:
        raise NotPositive(field_zh=field_zh, field_en=field_en, value=shown)
    return number


def act_time(session: Session, value: Any, field_zh: str, field_en: str, *, default_now: bool = True) -> datetime:
    """When an act happened, as an aware UTC instant: a datetime, or text in ISO 8601; a time
    without an offset is lab local time (what a datetime-local form field sends). Not in the future."""
    now = utcnow()
    if value is None or (isinstance(value, str) and not value.strip()):
        if default_now:
            return now
        raise FieldRequired(field_zh=field_zh, field_en=field_en)
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise InvalidActTime(field_zh=field_zh, field_en=field_en, value=str(value)[:40]) from None
    calendar = lab_calendar(session)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=calendar.tz)
    try:
        moment = moment.astimezone(now.tzinfo)
    except OverflowError:
        raise InvalidActTime(field_zh=field_zh, field_en=field_en, value=str(value)[:40]) from None
    if moment.year < 2000:
        raise InvalidActTime(field_zh=field_zh, field_en=field_en, value=str(value)[:40])
    if moment > now + FUTURE_TOLERANCE:
        raise ActInFuture(field_zh=field_zh, field_en=field_en, at=local_text(session, moment),
                          now=local_text(session, now))
    return moment


def not_before_sampling(session: Session, moment: datetime, sample: Any, field_zh: str, field_en: str) -> None:
    """Refuse an act on a sample dated before the sample was taken (`sample.collected_at`)."""
    if sample.collected_at is not None and moment < sample.collected_at:
        raise ActBeforeSampling(field_zh=field_zh, field_en=field_en, at=local_text(session, moment),
                                sample_no=sample.sample_no, sampled=local_text(session, sample.collected_at))


def local_text(session: Session, moment: datetime) -> str:
    return moment.astimezone(lab_calendar(session).tz).strftime("%Y-%m-%d %H:%M")


def celsius(value: Any, unit: Any, field_zh: str, field_en: str, *, required: bool = False) -> Decimal | None:
    """A temperature in °C from a value and its unit (°C, K or °F converted exactly), refused when
    it is outside what a sample can have, which is what a wrong unit usually produces."""
    number = decimal(value, field_zh, field_en, required=required)
    if number is None:
        return None
    unit_text = (unit if isinstance(unit, str) else "").strip().upper().replace(" ", "")
    if unit_text in CELSIUS or unit_text in {u.upper() for u in CELSIUS}:
        result = number
    elif unit_text in KELVIN:
        result = number + ABSOLUTE_ZERO_C
    elif unit_text in FAHRENHEIT or unit_text in {u.upper() for u in FAHRENHEIT}:
        result = (number - 32) * 5 / 9
    else:
        raise UnknownTemperatureUnit(unit=str(unit)[:12])
    if result is not number:  # converted: to a hundredth of a degree, without trailing zeros
        result = result.quantize(Decimal("0.01"))
        result = result.quantize(Decimal(1)) if result == result.to_integral_value() else result.normalize()
    if not PLAUSIBLE_C[0] <= result <= PLAUSIBLE_C[1]:
        shown = f"{number:f} {str(unit).strip() or '°C'}"
        raise TemperatureOutOfRange(field_zh=field_zh, field_en=field_en, value=shown)
    return result
