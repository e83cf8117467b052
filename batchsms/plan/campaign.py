"""The campaign file: its schema, and loading it into typed values.

Every problem becomes one :class:`CampaignError` that names the file, the line and the
YAML key, says what is wrong and how to fix it. Paths are relative to the YAML file.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tempfile
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

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

from batchsms import limits
from batchsms.errors import CampaignError, located
from batchsms.plan.window import DAY_NAMES, Window
from batchsms.providers.rules import Rate
from batchsms.providers.settings import ProviderConfig

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
_SURROGATE = re.compile("[\ud800-\udfff]")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|min|minute|h|hour)\s*$")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h|d)\s*$")
_UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
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
    timezone_column: str | None = None  # an IANA zone per row; overrides the number's zones
    send_at_column: str | None = None  # each row's earliest send time
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


class WindowConfig(Strict):
    """When recipients may receive a message, in their own local time."""

    hours: str = "09:00-20:00"
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], min_length=1)
    skip_holidays: bool = False

    @field_validator("hours")
    @classmethod
    def _hours_format(cls, value: str) -> str:
        _minutes(value)
        return value

    def rule(self) -> Window:
        start, end = _minutes(self.hours)
        return Window(start, end, frozenset(DAY_NAMES.index(d) for d in self.days),
                      self.skip_holidays)


def _minutes(hours: str) -> tuple[int, int]:
    """``"09:00-20:00"`` → (540, 1200); the end may be 24:00, and must follow the start."""
    match = _HOURS.match(hours)
    problem = (f"{hours!r} is not a span of hours: write HH:MM-HH:MM, e.g. 09:00-20:00 "
               "(the end after the start, at most 24:00)")
    if not match:
        raise ValueError(problem)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440 or end <= start:
        raise ValueError(problem)
    return start, end


def duration_seconds(text: str) -> float:
    """``"6h"``, ``"90min"``, ``"2d"``, ``"45s"`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit, e.g. 30min, "
                         "6h or 2d")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


class SendConfig(Strict):
    chunk_size: int = Field(default=50, ge=1, le=50)
    rate: str | None = None
    max_segments: int | None = Field(default=None, ge=1)
    encoding: Literal["auto", "smart"] = "auto"
    budget: Decimal | None = Field(default=None, ge=0)
    concurrency: int = Field(default=8, ge=1, le=64)
    not_before: datetime | None = None  # nothing goes out before this instant
    window: WindowConfig | None = None
    max_late: str | None = None  # skip a row whose send_at it would miss by more than this
    opt_out: str | None = Field(default=None, min_length=1)  # appended to every text

    @field_validator("not_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give the instant with its offset, e.g. 2026-12-01T09:00:00+01:00 "
                             "or 2026-12-01T08:00:00Z")
        return value

    @field_validator("max_late")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            duration_seconds(value)
        return value

    @field_validator("rate")
    @classmethod
    def _rate_format(cls, value: str | None) -> str | None:
        match = _RATE.match(value) if value is not None else None
        if value is not None and not match:
            raise ValueError(f"{value!r} is not a rate: write a count per unit, e.g. 10/s, "
                             "60/min or 1000/h")
        if match and int(match[1]) == 0:
            raise ValueError("the rate must be more than 0, or a send would wait forever: "
                             "write e.g. 1/s, or remove send.rate to use the provider's own")
        return value

    @property
    def parsed_rate(self) -> Rate | None:
        if self.rate is None:
            return None
        match = _RATE.match(self.rate)
        assert match is not None
        return Rate(int(match[1]), _PER_SECONDS[match[2]])

    @property
    def max_late_seconds(self) -> float | None:
        return None if self.max_late is None else duration_seconds(self.max_late)


class Campaign(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    contacts: ContactsConfig
    template: TemplateConfig
    provider: ProviderConfig
    pricing: PricingConfig
    send: SendConfig = Field(default_factory=SendConfig)
    suppression: list[Path] = Field(default_factory=list)
    # relative to the campaign file (the default too), never to the working folder
    reports: Path = Field(default=Path("reports"), validate_default=True)

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


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | float:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(_SPECIAL_FLOATS.get(text.lower(), text))  # NaN/inf: refused by the schema
    except InvalidOperation:  # YAML 1.1's base 60 (1:30.5): a float, never a crash
        return loader.construct_yaml_float(node)


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


def _surrogates(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """The key path of the first string with a lone surrogate (from a YAML \\ud800 escape):
    no file name, sender or text can hold one."""
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and _SURROGATE.search(key):
            return (*path, key)
        found = _surrogates(item, (*path, key))
        if found is not None:
            return found
    return None


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` (the parent mapping of an unknown key)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = next((a for a in (field.annotation, *get_args(field.annotation))
                        if hasattr(a, "model_fields")), None)
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


def _check_shape(text: str, source: Path) -> None:
    """Refuse YAML nested too deep or whose aliases expand too far, before anything expands.

    Reads the event stream, which neither builds nodes nor expands aliases: each anchor's
    expanded size is counted once, and an alias adds that size.
    """
    depth, most = limits.YAML_DEPTH.int_value(), limits.YAML_NODES.int_value()
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # [anchor, expanded size] per open collection
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            if len(stack) - 1 > depth:
                raise CampaignError(located(source, f"line {event.start_mark.line + 1}",
                                            f"the YAML is nested more than {depth} levels deep "
                                            "(a campaign file needs 3)", limits.YAML_DEPTH.fix))
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, size = None, sizes.get(event.anchor or "", 1)
        else:
            continue
        if anchor:
            sizes[anchor] = size
        stack[-1][1] += size
        if stack[-1][1] > most:
            raise CampaignError(located(source, f"line {event.start_mark.line + 1}",
                                        f"the YAML holds more than {most:,} values once its "
                                        "aliases (*name) are expanded", "Write the values out "
                                        f"instead of repeating aliases. {limits.YAML_NODES.fix}"))


def parse_campaign(text: str, source: Path) -> Campaign:
    """Validate a campaign given as YAML text; ``source`` names the file in errors."""
    try:
        _check_shape(text, source)
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
    broken = _surrogates(data)
    if broken is not None:
        line = lines.get(broken) or lines.get(broken[:-1])
        raise CampaignError(located(source, f"line {line}: {_dotted(broken)}" if line else
                                    _dotted(broken), "this value holds a \\u escape of half "
                                    "a character (a lone surrogate)", "Write the character "
                                    "itself, or escape it as one \\U00XXXXXX"))
    try:
        campaign = Campaign.model_validate(data, context={"base": source.parent})
    except ValidationError as exc:
        raise CampaignError([_explain(e, source, lines) for e in exc.errors()]) from None
    return campaign.model_copy(update={"source": source})


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file, and check that the files it names exist."""
    source = Path(path)
    try:
        data = read_small_file(source, limits.CAMPAIGN_BYTES, "the campaign file")
        text = data.decode("utf-8-sig")
    except IsADirectoryError:
        raise CampaignError(located(source, None, "this is a folder, not a campaign file",
                                    "Name the campaign's .yaml file")) from None
    except FileNotFoundError:
        raise CampaignError(located(source, None, "no such campaign file",
                                    "Check the path (it is relative to where you run batchsms)"
                                    )) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise CampaignError(located(source, None, f"cannot read the campaign file: {reason}",
                                    "Save it as UTF-8 text")) from None
    if "\0" in text:
        raise CampaignError(located(source, None, "this is a binary file, not a YAML campaign "
                                    "file", "Name the campaign's .yaml file"))
    campaign = parse_campaign(text, source)
    _check_files(campaign)
    if "reports" in campaign.model_fields_set and (problem := folder_problem(campaign.reports)):
        raise CampaignError(located(source, "reports", problem))
    return campaign


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be created under ``folder`` (made if missing), or None.

    Probes by making and removing a folder in the nearest existing one, so /proc or a
    read-only disk is named before any work is done, not as a crash after it.
    """
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so {folder} cannot be a folder: choose another path"
    try:
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as exc:
        return f"cannot create folders in {existing} ({exc.strerror}): choose another path"
    return None


def read_small_file(path: Path, limit: limits.Limit, what: str) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    Raises FileNotFoundError, or CampaignError for a device, a folder or a pipe (reading
    /dev/zero would never end) and for a file over the limit.
    """
    most = limit.int_value()
    with path.open("rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise CampaignError(located(path, None, f"{what} is not a regular file (a folder, "
                                        "device or pipe)", "Name a file"))
        data = f.read(most + 1)
    if len(data) > most:
        raise CampaignError(located(path, None, f"{what} is larger than {most:,} bytes",
                                    limit.fix))
    return data


def _check_files(campaign: Campaign) -> None:
    assert campaign.source is not None
    named = [("contacts.path", campaign.contacts.path)]
    if campaign.template.path is not None:
        named.append(("template.path", campaign.template.path))
    if campaign.provider.env_file is not None:
        named.append(("provider.env_file", campaign.provider.env_file))
    named += [(f"suppression[{i}]", p) for i, p in enumerate(campaign.suppression)]
    problems = [_file_problem(campaign.source, key, path) for key, path in named]
    problems = [p for p in problems if p]
    if not problems:
        problems = _template_is_data(campaign.source, named)
    if not problems and campaign.provider.env_file is not None:
        problems = _env_file_problems(campaign.source, campaign.provider.env_file)
    if problems:
        raise CampaignError(problems)


def _file_problem(source: Path, key: str, path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return located(source, key, f"file not found: {path}",
                       "Paths are relative to the campaign file; check the name and folder")
    if not stat.S_ISREG(mode):
        return located(source, key, f"{path} is not a regular file (a folder, device or pipe)",
                       "Name a file")
    return None


def _env_file_problems(source: Path, path: Path) -> list[str]:
    """An env file must be UTF-8 text; its content is never shown (it holds secrets)."""
    try:
        data = read_small_file(path, limits.SIDE_FILE_BYTES, "provider.env_file")
        text = data.decode("utf-8-sig")
    except CampaignError as exc:
        return exc.problems
    except (OSError, UnicodeDecodeError):
        text = "\0"
    if "\0" in text:
        return [located(source, "provider.env_file", f"{path} is not a text file of "
                        "KEY=VALUE lines (its content is not shown: it may hold secrets)",
                        "Name the .env file that holds the provider's credentials")]
    return []


def _template_is_data(source: Path, named: list[tuple[str, Path]]) -> list[str]:
    """The template must never be a file the campaign reads as data: every recipient would
    receive that file (other people's numbers) as their text."""
    template = dict(named).get("template.path")
    if template is None:
        return []
    return [located(source, "template.path", f"the template {template} is the same file as "
                    f"{key}", "Point template.path at the message text file, not at the data")
            for key, path in named if key != "template.path" and path.samefile(template)]
