"""Campaign files shared by the plan tests."""

YAML = """\
name: plan-test
contacts: {{path: contacts.csv, default_region: DK}}
template: {{path: template.txt}}
provider: {{name: {provider}, sender: '{sender}', sandbox: true}}
pricing: {{currency: EUR, default: 0.05, countries: {{DK: 0.04}}}}
{extra}
"""
