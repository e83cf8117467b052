"""The campaign file's ``provider:`` section, checked against the provider registry.

It lives with the providers, below the campaign module, so that provider clients can
take their settings without importing the campaign (no import circle).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from batchsms.providers.registry import PROVIDERS, ProviderEntry
from batchsms.providers.rules import ProviderRules


def _relative(value: Path | None, info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base")
    if value is None or base is None or value.is_absolute():
        return value
    return Path(base) / value


class ProviderKeys(BaseModel):
    """``provider:``: the keys every provider has. :data:`ProviderConfig` adds every
    provider's own options (``registry.ProviderEntry.options``) as optional keys, written
    flat in the YAML; a key set for a provider that does not have it is an error, and
    ``options`` gives the chosen provider's options with their defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sender: str
    sandbox: bool = False
    base_url: str | None = None
    timeout: float = Field(default=30.0, gt=0, le=600)
    env: dict[str, str] = Field(default_factory=dict)
    env_file: Path | None = None

    _env_file = field_validator("env_file")(_relative)

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in PROVIDERS:
            close = difflib.get_close_matches(value, PROVIDERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{value!r} is not a provider batchsms knows{hint}: use one of "
                             f"{', '.join(PROVIDERS)}")
        return value

    @field_validator("sender")
    @classmethod
    def _sender_rule(cls, value: str, info: ValidationInfo) -> str:
        sender = value.strip()
        name = info.data.get("name")
        problem = PROVIDERS[name].rules.sender_problem(sender) if name in PROVIDERS else None
        if problem:
            raise ValueError(problem)
        return sender

    @model_validator(mode="after")
    def _provider_options(self) -> ProviderKeys:
        rules = self.rules
        unknown = set(self.env) - set(rules.credentials)
        if unknown:
            raise ValueError(f"provider.env renames {sorted(unknown)}, but {rules.title} reads "
                             f"only {list(rules.credentials)}")
        given = {key: value for key in _OPTION_FIELDS
                 if (value := getattr(self, key, None)) is not None}
        for key in given:
            if key not in self.provider.options.model_fields:
                raise ValueError(_not_an_option(key, self.provider))
        try:
            self.provider.options.model_validate(given)
        except ValidationError as error:
            first = error.errors()[0]
            raise ValueError(f"provider.{'.'.join(map(str, first['loc']))}: "
                             f"{first['msg']}") from None
        return self

    @property
    def provider(self) -> ProviderEntry:
        return PROVIDERS[self.name]

    @property
    def rules(self) -> ProviderRules:
        return self.provider.rules

    @property
    def options(self) -> Any:
        """The provider's own options (e.g. ``TxtyOptions``), defaults filled in."""
        fields = self.provider.options.model_fields
        return self.provider.options.model_validate(
            {key: value for key in fields if (value := getattr(self, key, None)) is not None})


def _not_an_option(key: str, entry: ProviderEntry) -> str:
    owners = [e.name for e in PROVIDERS.values() if key in e.options.model_fields]
    plural = "s" if len(owners) > 1 else ""
    return f"{key} is an option of the {' and '.join(owners)} provider{plural} only"


_OPTION_FIELDS: dict[str, Any] = {
    name: (field.annotation | None, None)
    for entry in PROVIDERS.values() for name, field in entry.options.model_fields.items()}

if TYPE_CHECKING:
    ProviderConfig = ProviderKeys
else:
    ProviderConfig = create_model("ProviderConfig", __base__=ProviderKeys, **_OPTION_FIELDS)
