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

from batchsms.errors import CampaignError, located, not_utf8
from batchsms.providers.registry import PROVIDERS
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


def _sender_detail(root: yaml.Node, sender: str) -> str:
    """What exactly is wrong with a refused sender, found by asking the provider's rule
    about shorter or cleaner versions of it (the rule itself is the only source of truth)."""
    name, _, _ = _node_at(root, ("provider", "name"))
    entry = PROVIDERS.get(name.value) if isinstance(name, yaml.ScalarNode) else None
    if entry is None:
        return ""
    allowed = entry.rules.sender_ok
    cleaned = "".join(c for c in sender if c.isascii() and c.isalnum())
    if cleaned != sender and cleaned and allowed(cleaned):
        bad = sorted({repr(c) for c in sender if not (c.isascii() and c.isalnum())})
        return (f". {sender!r} has characters it does not allow ({', '.join(bad)}): remove "
                f"them (e.g. {cleaned!r})")
    fits = [n for n in range(len(sender) - 1, 0, -1) if allowed(sender[:n])]
    if fits:
        return (f". {sender!r} is {len(sender)} characters, the limit is {fits[0]}: shorten it "
                f"(e.g. {sender[:fits[0]]!r})")
    return ""


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
        match = _RATE.match(value) if value is not None else None
        if value is not None and not match:
            raise ValueError(f"{value!r} is not a rate: write a count per unit, e.g. 10/s, "
                             "60/min or 1000/h")
        if match and int(match[1]) == 0:
            raise ValueError(f"{value!r} would never send anything: use at least 1 per unit, "
                             "e.g. 1/min, or remove send.rate for the provider's default")
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


def _node_at(root: yaml.Node, loc: tuple[Any, ...]) -> tuple[yaml.Node, int, bool]:
    """The deepest YAML node on the way to ``loc``, the line of its key (1-based), and
    whether the node is itself a mapping key.

    Pydantic names a dict key that failed as ``(..., key, "[key]")`` and a key that YAML read
    as a boolean by its value (``NO`` → False), so keys are matched as written and as read.
    """
    node, line = root, root.start_mark.line + 1
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if _key_matches(k, part)]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line + 1
            if i + 2 == len(loc) and loc[-1] == "[key]":
                return key, line, True
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return node, line, False


def _key_matches(key: yaml.Node, part: Any) -> bool:
    if not isinstance(key, yaml.ScalarNode):
        return False
    if key.value == str(part):
        return True
    read = yaml.load(key.value, Loader=_Loader) if key.style is None else key.value
    return (type(read) is type(part) and read == part) or (
        isinstance(read, bool) and isinstance(part, int) and int(read) == part)


_WORDING = {
    "greater_than_equal": "must be {ge} or more",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be {le} or less",
    "less_than": "must be less than {lt}",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "decimal_parsing": "must be a number, e.g. 0.05",
    "decimal_type": "must be a number, e.g. 0.05",
    "float_parsing": "must be a number, e.g. 30",
    "float_type": "must be a number, e.g. 30",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "dict_type": "must be a mapping: keys with their values, indented below it",
    "model_type": "must be a mapping: keys with their values, indented below it",
    "model_attributes_type": "must be a mapping: keys with their values, indented below it",
    "list_type": "must be a list, e.g. [a.csv, b.csv]",
    "string_type": "must be text",
    "decimal_max_places": "may have at most {decimal_places} decimal places",
}
_PATTERNS = {
    "currency": "must be a three-letter ISO 4217 currency code in capitals, e.g. EUR",
    "name": "may hold only letters, digits, '-' and '_' (it names the report folder)",
}
_YAML_READS = {bool: "the yes/no value {}", int: "a number", Decimal: "a number"}


def _explain(error: dict[str, Any], source: Path, root: yaml.Node) -> str:
    loc = tuple(error["loc"])
    node, line, is_key = _node_at(root, loc)
    shown_loc = tuple(p for p in loc if p != "[key]")
    if is_key and isinstance(node, yaml.ScalarNode):
        shown_loc = (*shown_loc[:-1], node.value)
    key = _dotted(shown_loc)
    where = f"line {line}: {key}"
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(Campaign, loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"allowed keys: {', '.join(known)}"
        return located(source, where, f"unknown key '{loc[-1]}'", f"Remove it or fix it: {hint}")
    if kind == "missing":
        return located(source, where, "this key is required", "Add it (see the README's "
                       "campaign file reference)")
    written = node.value if isinstance(node, yaml.ScalarNode) else None
    value = error.get("input")
    if kind == "string_type" and written is not None and type(value) in _YAML_READS:
        return _quote_it(source, where, written, value, is_key, loc)
    ctx = {k: _plain(v) for k, v in (error.get("ctx") or {}).items()}
    if kind == "literal_error":
        return _choice(source, where, str(value), str(ctx.get("expected", "")))
    if kind == "string_pattern_mismatch":
        message = _PATTERNS.get(str(loc[-1]), "does not have the form this key needs")
    elif kind in _WORDING:
        message = _WORDING[kind].format(**ctx)
    else:
        message = error["msg"].removeprefix("Value error, ")
    if loc == ("provider", "sender") and kind == "value_error" and isinstance(value, str):
        message += _sender_detail(root, value.strip())
    shown = written if written is not None else _plain(value)
    numeric = re.fullmatch(r"[-+]?[0-9._]*([eE][-+]?[0-9]+)?", str(shown)) is not None
    shown = f"'{shown}'" if isinstance(value, str) and not numeric else shown
    told = kind == "value_error" and str(value) in message  # our own message names it
    got = f" (got {shown})" if isinstance(value, str | int | float | Decimal | bool) \
        and not told else ""
    return located(source, where, f"{message}{got}")


def _plain(value: Any) -> str:
    """A value as a person wrote it: ``-0.05``, not ``Decimal('-0.05')``."""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _quote_it(source: Path, where: str, written: str, value: Any, is_key: bool,
              loc: tuple[Any, ...]) -> str:
    """YAML's "Norway problem": NO, yes, off and 4520123456 are not text unless quoted."""
    what = f"the key {written}" if is_key else written
    example = f'"{written}": ...' if is_key else f'{loc[-1]}: "{written}"'
    reads = _YAML_READS[type(value)].format(str(value).lower())
    return located(source, where, f"YAML reads {what} as {reads}, not as text",
                   f"Put it in quotes: {example}")


def _choice(source: Path, where: str, value: str, expected: str) -> str:
    options = re.findall(r"'([^']*)'", expected)
    guess = difflib.get_close_matches(value, options, n=1)
    hint = f"did you mean '{guess[0]}'?" if guess else f"use one of: {', '.join(options)}"
    return located(source, where, f"'{value}' is not one of {', '.join(options)}",
                   hint[0].upper() + hint[1:])


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
    try:
        campaign = Campaign.model_validate(data, context={"base": source.parent})
    except ValidationError as exc:
        raise CampaignError([_explain(e, source, node) for e in exc.errors()]) from None
    return campaign.model_copy(update={"source": source})


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file, and check that the files it names exist."""
    source = Path(path)
    if source.is_dir():
        found = sorted(p.name for p in source.glob("*.y*ml"))
        hint = (f"e.g. {source / found[0]}" if found else "it holds no .yaml file")
        raise CampaignError(located(source, None, "this is a folder, not a campaign file",
                                    f"Give the campaign's YAML file ({hint})"))
    try:
        text = source.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CampaignError(located(source, None, "no such campaign file",
                                    "Check the path (it is relative to where you run batchsms)"
                                    f"{_near_names(source)}")) from None
    except UnicodeDecodeError as exc:
        raise CampaignError(not_utf8(source, exc)) from None
    except OSError as exc:
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
                f"Paths are relative to the campaign file; check the name and folder"
                f"{_near_names(path)}")
        for key, path in named
        if not path.is_file()
    ]
    if problems:
        raise CampaignError(problems)


def _near_names(path: Path) -> str:
    """``: did you mean 'contacts.csv'?`` when a file with a close name is there."""
    try:
        names = [p.name for p in path.parent.iterdir() if p.is_file()]
    except OSError:
        return ""
    guess = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return f": did you mean '{guess[0]}'?" if guess else ""

