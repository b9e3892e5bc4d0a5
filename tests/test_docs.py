"""The docs site builds without a warning, and every command line it documents parses.

A command line is a line of a fenced ``bash`` block in ``docs/**.md`` or ``README.md`` that starts with
an installed command (``hrl-*``, the ``[project.scripts]`` of pyproject.toml), or runs one under
``torchrun`` (``--no-python hrl-...``, or ``-m <module>``). Each is parsed the way its command parses it,
without running anything:

- Hydra commands (hrl-train, hrl-collect, hrl-skills, hrl-export, hrl-deploy): the overrides are composed
  over the package's cfg/ with Hydra's compose API and the config resolved (an unknown key, group or
  option, or a bad value type, fails); hrl-train's task name must be a task of the project.
- hrl-study run EXPERIMENT ...: composed over cfg/study/<experiment>.yaml the same way (not resolved: its
  ``${hydra:...}`` values exist only inside a job).
- hrl-import-dataset: its own ``parse_args``.
- argparse commands (hrl-library, hrl-eval, hrl-plot, hrl-sim2sim, and any other script) build their
  parser inside ``main``; ``main(argv)`` runs up to the real ``parse_args`` and stops right after it.

``<placeholder>`` is what the reader replaces (``runs/<run>/nn/...``); the test reads it as the bare word.
``python benchmarks/x.py`` and ``bash benchmarks/x.sh`` lines must name a file that exists.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]

# the config each Hydra console script composes (its @hydra.main config_name)
HYDRA_CONFIGS = {"hrl-train": "config", "hrl-collect": "collect", "hrl-skills": "skills_config",
                 "hrl-export": "export", "hrl-deploy": "deploy"}
# every other command but hrl-import-dataset builds an argparse parser inside its main(argv)


def _scripts() -> dict:
    """Console script name -> "module:function", from pyproject.toml (the source of truth, not the
    possibly stale metadata of an editable install)."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _bash_lines(text: str):
    """(line number, logical line) of every fenced bash block; backslash continuations joined."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^\s*```\s*(bash|sh|shell|console)\s*$", lines[i])
        i += 1
        if not fence:
            continue
        pending, start = "", None
        while i < len(lines) and not re.match(r"^\s*```", lines[i]):
            line = lines[i].strip()
            start = i + 1 if start is None else start
            if line.endswith("\\"):
                pending += line[:-1] + " "
            else:
                yield start, pending + line
                pending, start = "", None
            i += 1
        i += 1


def _documented_commands() -> list:
    """(where, command, args) for every documented command line."""
    scripts = _scripts()
    modules = {target.split(":")[0]: name for name, target in scripts.items()}
    found = []
    for page in PAGES:
        for lineno, line in _bash_lines(page.read_text()):
            line = re.sub(r"<([A-Za-z0-9_ .-]+)>", lambda m: m.group(1).replace(" ", "_"), line)
            words = shlex.split(line, comments=True)
            where = f"{page.relative_to(ROOT)}:{lineno}"
            if not words:
                continue
            if words[0] in ("python", "bash") and len(words) > 1 and words[1].startswith("benchmarks/"):
                found.append((where, "file", [words[1]]))
                continue
            if words[0] == "python" and len(words) > 2 and words[1] == "-m":
                words = ["torchrun", *words[1:]]
            if words[0] == "torchrun":
                if "--no-python" in words:
                    rest = words[words.index("--no-python") + 1:]
                elif "-m" in words:
                    module = words[words.index("-m") + 1]
                    found.append((where, "module", [module]))
                    rest = [modules[module], *words[words.index("-m") + 2:]] if module in modules else []
                else:
                    rest = []
                words = rest
            if words and words[0].startswith("hrl-"):
                found.append((where, words[0], words[1:]))
    return found


COMMANDS = _documented_commands()


def test_the_docs_document_every_command():
    """Each console script appears in at least one documented command line, and nothing else does."""
    scripts = _scripts()
    used = {cmd for _, cmd, _ in COMMANDS if cmd.startswith("hrl-")}
    assert used - set(scripts) == set(), f"documented commands that are not installed: {used - set(scripts)}"
    assert set(scripts) - used == set(), f"installed commands no page shows: {set(scripts) - used}"


def test_the_config_reference_names_every_config_file():
    """docs/reference/config.md lists every file of the task, train, skills and algo groups."""
    text = (ROOT / "docs" / "reference" / "config.md").read_text()
    cfg = ROOT / "cfg"
    missing = [f"{p.parent.name}/{p.name}" for group in ("task", "train", "skills", "algo")
               for p in sorted((cfg / group).glob("*.yaml")) if f"`{p.stem}`" not in text]
    assert not missing, f"docs/reference/config.md does not name {missing}"


def test_the_guides_name_files_that_exist():
    """A `path/to/file.py|yaml|sh|xml` a guide or the README names exists (from the repository root or
    inside the package), so a moved module shows here. docs/results/ are dated records: not checked."""
    missing = []
    for page in PAGES:
        if "results" in page.relative_to(ROOT).parts:
            continue
        for path in re.findall(r"`([A-Za-z0-9_./-]+/[A-Za-z0-9_.-]+\.(?:py|yaml|sh|xml))`", page.read_text()):
            if not any((base / path).exists() for base in (ROOT, ROOT / "isaacgymenvs_hrl")):
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "pages name files that do not exist:\n" + "\n".join(missing)


# ---- parsing -----------------------------------------------------------------------------------------
def _hydra_parse(command: str, args: list, experiment: str = "") -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from isaacgymenvs_hrl.paths import CFG_DIR
    from isaacgymenvs_hrl.utils.config import register_resolvers
    from isaacgymenvs_hrl.utils.task_config import HYDRA_VERSION_BASE

    register_resolvers()
    overrides, words = [], iter(args)
    for word in words:                        # Hydra's own flags: -m (multirun), --cfg job|hydra|all, --resolve
        if word in ("--cfg", "-c"):
            assert next(words, None) in ("job", "hydra", "all"), f"{command}: --cfg takes job, hydra or all"
        elif word not in ("-m", "--multirun", "--resolve"):
            overrides.append(word)
    if command == "hrl-train":
        from isaacgymenvs_hrl.learning.compat import apply_config_aliases
        overrides, _ = apply_config_aliases(overrides)
    # a multirun sweep (a=1,2) is composed at its first value, as Hydra's sweeper composes each job
    parsed = OverridesParser.create().parse_overrides(overrides)
    overrides = [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override()
                 else o.input_line for o in parsed]
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    if command == "hrl-study":                # hrl-study run EXPERIMENT ...: a Hydra app over cfg/study/<experiment>
        with initialize_config_dir(config_dir=str(CFG_DIR / "study"), version_base=HYDRA_VERSION_BASE):
            compose(config_name=experiment, overrides=overrides)      # its ${hydra:...} resolve only in a job
        return
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base=HYDRA_VERSION_BASE):
        cfg = compose(config_name=HYDRA_CONFIGS[command], overrides=overrides)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if command in ("hrl-train", "hrl-collect"):
        from isaacgymenvs_hrl.tasks import isaacgym_task_map
        assert resolved["task"]["name"] in isaacgym_task_map, f"task {resolved['task']['name']} has no class"


class _Parsed(Exception):
    pass


def _argparse_parse(command: str, args: list, monkeypatch) -> None:
    """Run the command's main(argv) up to its own parser's parse_args and stop there: the commands
    build their parser inside main and expose no parser of their own."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    module, function = _scripts()[command].split(":")
    with pytest.raises(_Parsed):
        getattr(importlib.import_module(module), function)(list(args))


@pytest.mark.parametrize("where, command, args", COMMANDS, ids=[f"{w} {c}" for w, c, _ in COMMANDS])
def test_documented_command_parses(where, command, args, monkeypatch):
    if command == "file":
        assert (ROOT / args[0]).is_file(), f"{where}: {args[0]} does not exist"
    elif command == "module":
        assert importlib.util.find_spec(args[0]) is not None, f"{where}: no module {args[0]}"
    elif command in HYDRA_CONFIGS:
        _hydra_parse(command, args)
    elif command == "hrl-study" and args[:1] == ["run"] and len(args) > 1:
        _hydra_parse(command, args[2:], experiment=args[1])
    elif command == "hrl-import-dataset":
        module = importlib.import_module(_scripts()[command].split(":")[0])
        module.parse_args(list(args))
    elif command in _scripts():
        _argparse_parse(command, args, monkeypatch)
    else:
        pytest.fail(f"{where}: {command} is not an installed command")


def test_a_wrong_documented_command_fails_to_parse(monkeypatch):
    """The checks above can fail: a misspelt key, task or flag is caught."""
    from hydra.errors import ConfigCompositionException, MissingConfigException

    with pytest.raises(ConfigCompositionException):
        _hydra_parse("hrl-train", ["task=HumanoidLocation", "task.env.llc.chekpoint=x"])
    with pytest.raises(MissingConfigException):
        _hydra_parse("hrl-train", ["task=HumanoidWalk"])
    with pytest.raises(ConfigCompositionException):
        _hydra_parse("hrl-skills", ["algo=ldse", "dataset=x", "skills.epoch=3"])
    with pytest.raises(SystemExit):
        _argparse_parse("hrl-eval", ["runs/x/nn/x.pth", "--epsiodes", "3"], monkeypatch)


# ---- the site ----------------------------------------------------------------------------------------
def test_the_docs_site_builds_without_warnings(tmp_path):
    """mkdocs build --strict: a broken link or anchor, a page missing from the nav or a bad image path
    fails (mkdocs is in the [test] extra: without it this fails, it does not skip)."""
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
                          "--config-file", str(ROOT / "mkdocs.yml")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    assert "WARNING" not in log, log
    assert (tmp_path / "site" / "index.html").is_file()
