"""The campaign file: its schema, and loading it into typed values.

Every problem becomes one :class:`CampaignError` that names the file, the line and the
YAML key, says what is wrong and how to fix it. Paths are relative to the YAML file.
"""

from __future__ import annotations

import difflib
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import phonenumbers
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from batchsms.errors import CampaignError, located
from batchsms.providers.rules import Rate
from batchsms.providers.settings import ProviderConfig

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|min|minute|h|hour)\s*$")
_PER_SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0,
                "h": 3600.0, "hour": 3600.0}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative(value: Path | None, info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base")
    if value is None or base is None or value.is_absolute():
        return value
    return Path(base) / value


def _region(value: str | None) -> str | None:
    if value is None:
        return None
    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not an ISO 3166 country code phonenumbers knows "
                         "(use two letters, e.g. DK, FR, US)")
    return region


class ContactsConfig(Strict):
    path: Path
    sheet: str | None = None
    phone_column: str = "phone"
    default_region: str | None = None
    country_column: str | None = None
    delimiter: Literal[",", ";", "\t", "|"] | None = None
    encoding: str | None = None

    _path = field_validator("path")(_relative)
    _default_region = field_validator("default_region")(_region)


class TemplateConfig(Strict):
    path: Path | None = None
    text: str | None = None

    _path = field_validator("path")(_relative)

    @model_validator(mode="after")
    def _exactly_one(self) -> TemplateConfig:
        if (self.path is None) == (self.text is None):
            raise ValueError("give exactly one of template.path and template.text")
        return self


# A price per segment: exact, finite, and within a sane range, so that no total can
# overflow and a typo such as 5e16 is refused here instead of wrapping a budget check.
MAX_PRICE = Decimal(1000)
PRICE_PLACES = 6
Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, decimal_places=PRICE_PLACES,
                                 allow_inf_nan=False)]


class PricingConfig(Strict):
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    default: Price
    countries: dict[str, Price] = Field(default_factory=dict)

    @field_validator("countries")
    @classmethod
    def _country_codes(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return {_region(k) or k: v for k, v in value.items()}


class SendConfig(Strict):
    chunk_size: int = Field(default=50, ge=1, le=50)
    rate: str | None = None
    max_segments: int | None = Field(default=None, ge=1)
    encoding: Literal["auto", "smart"] = "auto"
    budget: Decimal | None = Field(default=None, ge=0)
    concurrency: int = Field(default=8, ge=1, le=64)

    @field_validator("rate")
    @classmethod
    def _rate_format(cls, value: str | None) -> str | None:
        if value is not None and not _RATE.match(value):
            raise ValueError(f"{value!r} is not a rate: write a count per unit, e.g. 10/s, "
                             "60/min or 1000/h")
        return value

    @property
    def parsed_rate(self) -> Rate | None:
        if self.rate is None:
            return None
        match = _RATE.match(self.rate)
        assert match is not None
        return Rate(int(match[1]), _PER_SECONDS[match[2]])


class Campaign(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    contacts: ContactsConfig
    template: TemplateConfig
    provider: ProviderConfig
    pricing: PricingConfig
    send: SendConfig = Field(default_factory=SendConfig)
    suppression: list[Path] = Field(default_factory=list)
    reports: Path = Path("reports")  # relative to the campaign file, not the working folder

    source: Path | None = Field(default=None, exclude=True)

    _reports = field_validator("reports")(_relative)

    @field_validator("send")
    @classmethod
    def _rate_within_the_providers_limit(cls, send: SendConfig,
                                         info: ValidationInfo) -> SendConfig:
        """Against the real API, a rate over the provider's documented limit only buys 429s."""
        provider: ProviderConfig | None = info.data.get("provider")
        rate = send.parsed_rate
        limit = provider.rules.max_rate if provider else None
        if rate is None or limit is None or provider is None:
            return send
        real_api = not provider.sandbox and provider.base_url is None
        if real_api and rate.count / rate.per > limit.count / limit.per:
            raise ValueError(f"send.rate {send.rate} is faster than {provider.rules.title} allows "
                             f"({limit}); use at most {limit}")
        return send

    @field_validator("suppression", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("suppression")
    @classmethod
    def _suppression_paths(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [Path(base) / p if (base := (info.context or {}).get("base")) and not
                p.is_absolute() else p for p in value]


def report_dir(campaign: Campaign, reports: Path | None = None) -> Path:
    """``<reports>/<name>``: the campaign's ``reports:`` folder (relative to the campaign
    file, so it is the same from any working folder) unless ``reports`` overrides it."""
    return (campaign.reports if reports is None else reports) / campaign.name


# -- loading ------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Reads YAML floats as exact decimals: money must not pass through binary floats."""


_SPECIAL_FLOATS = {".nan": "NaN", ".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity"}


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    return Decimal(_SPECIAL_FLOATS.get(text.lower(), text))  # NaN/inf: refused by the schema


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)


def _line_map(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """YAML key path → the 1-based line where its value (or key) stands."""
    lines: dict[tuple[Any, ...], int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_line_map(value, (*path, key.value)))
            lines[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_map(item, (*path, i)))
    return lines


def _duplicate_keys(node: yaml.Node, path: str = "") -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            dotted = f"{path}.{key.value}" if path else str(key.value)
            if key.value in seen:
                found.append((dotted, key.start_mark.line + 1))
            seen.add(key.value)
            found += _duplicate_keys(value, dotted)
    return found


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` (the parent mapping of an unknown key)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    return [k for k in getattr(current, "model_fields", {}) if k != "source"]


def _explain(error: dict[str, Any], source: Path, lines: dict[tuple[Any, ...], int]) -> str:
    loc = tuple(error["loc"])
    key = _dotted(loc)
    line = lines.get(loc) or lines.get(loc[:-1]) or lines.get(())
    where = f"line {line}: {key}" if line else key
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(Campaign, loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"allowed keys: {', '.join(known)}"
        return located(source, where, f"unknown key '{loc[-1]}'", f"Remove it or fix it: {hint}")
    if kind == "missing":
        return located(source, where, "this key is required", "Add it (see the README's "
                       "campaign file reference)")
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float | Decimal | bool) else ""
    return located(source, where, f"{message}{shown}")


def parse_campaign(text: str, source: Path) -> Campaign:
    """Validate a campaign given as YAML text; ``source`` names the file in errors."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise CampaignError(located(source, where, f"this is not valid YAML: {problem}",
                                    "Check the indentation and quoting around that line")) from None
    if not isinstance(data, dict):
        raise CampaignError(located(source, None, "a campaign file must be a YAML mapping of keys "
                                    "(name:, contacts:, template:, provider:, pricing:)"))
    dups = _duplicate_keys(node)
    if dups:
        raise CampaignError([located(source, f"line {line}: {key}", "this key is given twice",
                                     "Keep one of them") for key, line in dups])
    lines = _line_map(node)
    try:
        campaign = Campaign.model_validate(data, context={"base": source.parent})
    except ValidationError as exc:
        raise CampaignError([_explain(e, source, lines) for e in exc.errors()]) from None
    return campaign.model_copy(update={"source": source})


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file, and check that the files it names exist."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CampaignError(located(source, None, "no such campaign file",
                                    "Check the path (it is relative to where you run batchsms)"
                                    )) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError(located(source, None, f"cannot read the campaign file: {exc}",
                                    "Save it as UTF-8 text")) from None
    campaign = parse_campaign(text, source)
    _check_files(campaign)
    return campaign


def _check_files(campaign: Campaign) -> None:
    assert campaign.source is not None
    named = [("contacts.path", campaign.contacts.path)]
    if campaign.template.path is not None:
        named.append(("template.path", campaign.template.path))
    if campaign.provider.env_file is not None:
        named.append(("provider.env_file", campaign.provider.env_file))
    named += [(f"suppression[{i}]", p) for i, p in enumerate(campaign.suppression)]
    problems = [
        located(campaign.source, key, f"file not found: {path}",
                "Paths are relative to the campaign file; check the name and folder")
        for key, path in named
        if not path.is_file()
    ]
    if problems:
        raise CampaignError(problems)
