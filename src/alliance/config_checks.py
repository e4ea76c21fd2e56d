"""Start-up checks of the configuration and the environment, each problem one line of plain text.

``workflow/rules/common.smk`` (and, for the config file itself, the ``Snakefile``) calls these
before any rule is defined and stops Snakemake with :func:`exit_message` when one returns a
problem: the console then shows one message naming the key (or file), its value and what is
allowed, and no traceback. Every function returns problems rather than raising, so the tests need
no Snakemake run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

from alliance.sampling import SAMPLERS

#: The data contract's three input files (the same as ``alliance.input_data.FILES``, which imports
#: pandas; Snakemake reads this module at start-up, so it stays light).
INPUT_FILES = ("patients.csv", "wai.csv", "digital.csv")

TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of keys to values",
    "null": "empty",
}


def exit_message(problems: Sequence[str]) -> str:
    """The text Snakemake prints (through ``sys.exit``) for one or more configuration problems."""
    if len(problems) == 1:
        return f"Configuration error: {problems[0]}"
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return f"Configuration errors:\n{listed}"


def listing(names: Iterable[str]) -> str:
    """``a, b and c``."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def show(value: Any, limit: int = 80) -> str:
    """A config value as the user wrote it: text quoted (in full: it may be a path), other values
    in YAML's flow style, shortened when long."""
    if isinstance(value, str):
        return repr(value)
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def key_name(path: Iterable[Any]) -> str:
    """``sampling.draws`` for the path ``["sampling", "draws"]``; list positions as ``[0]``."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "the config"


def describe_allowed(schema: Mapping[str, Any]) -> str:
    """What a JSON-schema fragment allows, in words: ``an integer, at least 10``."""
    if "enum" in schema:
        return "one of " + ", ".join(str(choice) for choice in schema["enum"])
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    words = " or ".join(TYPE_NAMES.get(name, name) for name in types) or "a value"
    bounds = []
    for keyword, phrase in (
        ("minimum", "at least {}"),
        ("exclusiveMinimum", "greater than {}"),
        ("maximum", "at most {}"),
        ("exclusiveMaximum", "less than {}"),
        ("minItems", "with at least {} items"),
        ("maxItems", "with at most {} items"),
        ("minLength", "of at least {} characters"),
        ("minProperties", "with at least {} entries"),
        ("pattern", "matching the pattern {}"),
    ):
        if keyword in schema:
            bounds.append(phrase.format(schema[keyword]))
    if schema.get("uniqueItems"):
        bounds.append("without repeats")
    if "properties" in schema and schema.get("additionalProperties") is False:
        bounds.append("with the keys " + ", ".join(schema["properties"]))
    return ", ".join([words, *bounds])


def is_typed_text(value: Any) -> bool:
    """True for text that YAML reads as a number or true/false (``'-5'``, ``'true'``)."""
    if not isinstance(value, str):
        return False
    try:
        return not isinstance(yaml.safe_load(value), str | type(None))
    except yaml.YAMLError:
        return False


def describe_schema_error(error) -> str:
    """One line for a ``jsonschema.ValidationError``: the key, its value and what is allowed."""
    path = list(error.absolute_path)
    instance, schema = error.instance, error.schema
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in instance]
        keys = ", ".join(key_name([*path, name]) for name in missing)
        needed = ", ".join(error.validator_value)
        verb = "is" if len(missing) == 1 else "are"
        return f"{keys} {verb} missing; {key_name(path)} needs the keys {needed}."
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        known = list(schema.get("properties", {}))
        unknown = [name for name in instance if name not in known]
        keys = ", ".join(key_name([*path, name]) for name in unknown)
        verb = "is not a known key" if len(unknown) == 1 else "are not known keys"
        where = f"under {key_name(path)}" if path else "at the top level"
        return f"{keys} {verb}; allowed {where}: {', '.join(known)}."
    return f"{key_name(path)} is {show(instance)}; allowed: {describe_allowed(schema)}."


def read_nested_command_line_values(config: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Read, in place, the text values that Snakemake's ``--config`` leaves nested in a mapping
    (``--config 'summary={ci_prob: 0.9}'`` gives the text ``'0.9'``) as the YAML values they spell,
    where the schema wants a number, an integer or true/false there. Other values are untouched."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    for _ in range(100):  # each pass reads every offending leaf; nested lists may need another
        errors = [
            e
            for e in validator.iter_errors(config)
            if e.validator == "type" and is_typed_text(e.instance) and e.absolute_path
        ]
        if not errors:
            return
        for error in errors:
            *parents, last = list(error.absolute_path)
            container = config
            for part in parents:
                container = container[part]
            container[last] = yaml.safe_load(error.instance)


def in_reference_order(value: Any, reference: Any) -> Any:
    """``value`` with the keys of every mapping in the order of ``reference`` (the project's
    config file), keys it lacks after them in their own order.

    Snakemake compares a job's params with those of its last run as written, key order
    included, and a config file merged over the project's brings its own key order: without
    this, a file that lists ``sampling: {tune, draws}`` rather than ``{draws, tune}`` would
    rerun every fit although no value changed.
    """
    if isinstance(value, Mapping):
        ordered = isinstance(reference, Mapping)
        keys = [key for key in reference if key in value] if ordered else []
        keys += [key for key in value if key not in keys]
        return {
            key: in_reference_order(value[key], reference.get(key) if ordered else None)
            for key in keys
        }
    return value


def schema_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every breach of the JSON schema, one line each, ordered by key (empty when valid)."""
    from jsonschema import Draft202012Validator

    errors = sorted(
        Draft202012Validator(schema).iter_errors(config),
        key=lambda error: [str(part) for part in error.absolute_path],
    )
    return list(dict.fromkeys(describe_schema_error(error) for error in errors))


def load_schema(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def yaml_file_problem(path: str | Path) -> str | None:
    """Why the YAML config file at ``path`` cannot be read (line, column, problem), or None.

    A missing file is left to Snakemake, which names it. The file is parsed with the loader
    Snakemake's own reader (yte) uses, so what passes here passes there.
    """
    path = Path(path)
    allowed = "allowed: YAML with keys at the top level, indented with spaces (not tabs)"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        return f"{path} cannot be read as a text file ({error}); {allowed}."
    try:
        content = yaml.load(text, Loader=yaml.FullLoader)
    except yaml.YAMLError as error:
        return f"{path} is not valid YAML ({yaml_error_text(error)}); {allowed}."
    if content is not None and not isinstance(content, Mapping):
        kind = "a list" if isinstance(content, list) else f"only the value {show(content)}"
        return f"{path} holds {kind}, not keys with values; {allowed}."
    return None


def yaml_error_text(error: yaml.YAMLError) -> str:
    """``line 5, column 1: found character '\\t' ...`` from PyYAML's error and its marks."""

    def at(mark) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    text = f"{at(mark)}: {problem}" if mark is not None else problem
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and context_mark is not None:
        text += f", {context} from {at(context_mark)}"
    return text


def reported_model_problem(growth: Mapping[str, Any]) -> str | None:
    """``growth.reported_model`` must name one of ``growth.models``, and each of
    ``growth.reported_alternatives`` another model with the same likelihood (cross-validation
    compares them, so ``growth.cross_validation.models`` must include them)."""
    models = list(growth["models"])
    reported = growth["reported_model"]
    if reported not in models:
        return (
            f"growth.reported_model is {show(reported)}; allowed: one of the models under"
            f" growth.models: {', '.join(models)}."
        )
    likelihood = growth["models"][reported]["likelihood"]
    comparable = [m for m in models if growth["models"][m]["likelihood"] == likelihood]
    for alternative in growth.get("reported_alternatives", []):
        if alternative not in comparable or alternative == reported:
            return (
                f"growth.reported_alternatives holds {show(alternative)}; allowed: other models"
                f" under growth.models with the reported model's likelihood ({likelihood}):"
                f" {', '.join(m for m in comparable if m != reported) or 'none'}."
            )
    # An empty list cross-validates exactly the needed models (growth.cross_validated_models).
    validated = growth.get("cross_validation", {}).get("models") or models
    needed = [reported, *growth.get("reported_alternatives", [])]
    for name in validated:
        if name not in models:
            return (
                f"growth.cross_validation.models holds {show(name)}; allowed: models under"
                f" growth.models: {', '.join(models)}."
            )
    missing = [name for name in needed if name not in validated]
    if missing:
        return (
            f"growth.cross_validation.models leaves out {', '.join(map(show, missing))}; the"
            " reported model and its alternatives are chosen between by cross-validation."
        )
    return None


def residual_sd_problem(growth: Mapping[str, Any]) -> str | None:
    """A residual SD per group (``residual_sd_by``) is implemented for Gaussian models only."""
    for name, spec in growth["models"].items():
        if spec.get("residual_sd_by") and spec["likelihood"] != "gaussian":
            return (
                f"growth.models.{name}.residual_sd_by is set for a {spec['likelihood']} model;"
                " allowed: only with likelihood gaussian."
            )
    return None


def sampler_problem(sampler: str, installed=find_spec) -> str | None:
    """``sampling.sampler`` must be installed (each sampler is the package of the same name)."""
    if sampler in SAMPLERS and installed(sampler) is not None:
        return None
    available = [name for name in SAMPLERS if installed(name) is not None]
    if sampler in SAMPLERS:
        what = f"but the package {sampler} is not installed in this environment"
    else:
        what = "which is not a sampler this workflow knows"
    return (
        f"sampling.sampler is {show(sampler)}, {what}; allowed: "
        f"{', '.join(available) or 'none installed'} (installed here)."
    )


def raw_data_dir_problem(raw_data_dir: str | None, base: str | Path = ".") -> str | None:
    """``raw_data_dir``, when set, must be a folder holding the three input files.

    A relative folder is taken from ``base`` (Snakemake's working directory).
    """
    text = (raw_data_dir or "").strip()
    if not text:
        return None
    folder = Path(base) / Path(text).expanduser()
    allowed = (
        f"allowed: a folder with {listing(INPUT_FILES)} (see config/README.md),"
        " or empty to analyse the synthetic twin"
    )
    shown = f"raw_data_dir is {show(text)}"
    if not Path(text).expanduser().is_absolute():
        shown += f" (relative to {Path(base).resolve()})"
    if not folder.exists():
        return f"{shown}, a folder that does not exist; {allowed}."
    if not folder.is_dir():
        return f"{shown}, a file, not a folder; {allowed}."
    missing = [name for name in INPUT_FILES if not (folder / name).is_file()]
    if missing:
        return f"{shown}, a folder without {listing(missing)}; {allowed}."
    return None


def delta_grid_problem(missing_data: Mapping[str, Any]) -> str | None:
    """``missing_data.delta`` must step from ``lowest`` to ``highest`` through 0."""
    from alliance.tipping_points import delta_grid

    delta = (missing_data or {}).get("delta") or {}
    if not delta:
        return None
    try:
        delta_grid(delta)
    except ValueError as error:
        return f"missing_data.delta: {error}."
    return None


def validation_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Each validation scenario's twin (its changes merged over ``synthetic_twin``) must be a
    valid ``synthetic_twin``, and ``validation.run`` must name configured scenarios."""
    from alliance.settings import deep_update

    validation = config.get("validation") or {}
    scenarios = validation.get("scenarios") or {}
    problems = [
        f"validation.run: unknown scenario {name!r}; configured: {listing(scenarios) or 'none'}"
        for name in validation.get("run") or []
        if name not in scenarios
    ]
    twin_schema = {
        **schema,
        "properties": {"synthetic_twin": schema["properties"]["synthetic_twin"]},
        "required": ["synthetic_twin"],
        "additionalProperties": True,
    }
    for name, scenario in scenarios.items():
        merged = deep_update(dict(config["synthetic_twin"]), scenario.get("twin") or {})
        for problem in schema_problems({"synthetic_twin": merged}, twin_schema):
            problems.append(f"validation.scenarios.{name}.twin: {problem}")
    return problems


def startup_problems(
    config: Mapping[str, Any], base: str | Path = ".", schema: Mapping[str, Any] | None = None
) -> list[str]:
    """The problems a valid-by-schema config can still have: names and paths that do not exist,
    and (with ``schema``) validation scenarios whose twin is not a valid twin."""
    problems = [
        reported_model_problem(config["growth"]),
        residual_sd_problem(config["growth"]),
        sampler_problem(config["sampling"]["sampler"]),
        raw_data_dir_problem(config.get("raw_data_dir"), base),
        delta_grid_problem(config.get("missing_data")),
        *(validation_problems(config, schema) if schema is not None else []),
    ]
    return [problem for problem in problems if problem]
