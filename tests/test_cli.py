"""The ``bayes-lsl`` commands end to end on the shipped example: files, contents and errors."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_lsl as bl
from bayes_lsl import report, sources
from bayes_lsl.cli import main
from bayes_lsl.errors import BayesLslError, DataError
from bayes_lsl.parameters import PARAMETERS, parameter_draws

matplotlib.use("Agg")

COMMANDS = ["data", "fit", "select-k", "predict", "allocate", "report"]


@pytest.fixture(scope="module")
def fit_path(example_fit):
    """One mle fit of the example (K = 2) through the command line, shared by the test run (conftest)."""
    return example_fit[0]


@pytest.fixture
def new_models(tmp_path):
    path = tmp_path / "new.csv"
    # A bigger member of a seen family, and a model of an unseen family with one observed score.
    pd.DataFrame({"model": ["big", "stranger"], "family": ["fam000", "newfam"], "size": [40.0, 7.0],
                  "tokens": [1.0, 2.0], "mmlu": [np.nan, 0.6]}).to_csv(path, index=False)  # fmt: skip
    return path


def _one_error_line(err: str) -> str:
    assert err.startswith("bayes-lsl: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_predict(fit_path, new_models, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(fit_path), str(new_models), "--out", str(out), "--n-draws", "300", "--quiet"]) == 0
    assert str(out) in capsys.readouterr().out
    table = pd.read_csv(out)
    benchmarks = list(bl.load_fit(fit_path).attrs["benchmarks"])
    assert len(table) == 2 * len(benchmarks) and set(table["benchmark"]) == set(benchmarks)
    assert {"model", "family", "mean", "median", "lower", "upper", "observed", "seen_family"} <= set(table.columns)
    assert ((0 <= table["lower"]) & (table["lower"] < table["median"]) & (table["median"] < table["upper"])
            & (table["upper"] <= 1)).all()  # fmt: skip
    assert table.set_index(["model", "benchmark"]).loc[("stranger", "mmlu"), "observed"] == pytest.approx(0.6)
    assert table.groupby("model")["seen_family"].first().to_dict() == {"big": True, "stranger": False}
    assert set(tmp_path.iterdir()) == {new_models, out}  # no temporary file left

    skills = tmp_path / "skills.csv"
    assert main(["predict", str(fit_path), str(new_models), "--kind", "theta", "--n-draws", "200",
                 "--out", str(skills), "--quiet"]) == 0  # fmt: skip
    assert set(pd.read_csv(skills)["skill"]) == {"skill_1", "skill_2"}


def test_allocate(fit_path, tmp_path):
    out, plot = tmp_path / "allocation.csv", tmp_path / "allocation.png"
    argv = ["allocate", str(fit_path), "--flops", "1e22", "3e22", "--paper-budgets", "--benchmark", "mmlu",
            "--n-draws", "300", "--plot", str(plot), "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    table = pd.read_csv(out)
    assert len(table) == 12 and set(table["target"]) == {"mmlu"} and table["flops"].is_monotonic_increasing
    # In the inputs' units, billions of parameters and trillions of tokens: F = 6e21 size tokens.
    np.testing.assert_allclose(6e21 * table["size_opt"] * table["tokens_opt"], table["flops"], rtol=1e-6)
    slack = 1 + 1e-9
    assert (table["size_lower"] <= table["size_opt"] * slack).all()
    assert (table["size_opt"] <= table["size_upper"] * slack).all()
    assert {"share_interior", "set_by_box", "value_lower", "value_upper"} <= set(table.columns)
    assert plot.stat().st_size > 10_000

    skills = tmp_path / "skills.csv"
    assert main(["allocate", str(fit_path), "--flops", "1e22", "--skill", "math", "--unconstrained",
                 "--n-draws", "200", "--out", str(skills), "--quiet"]) == 0  # fmt: skip
    assert list(pd.read_csv(skills)["target"]) == ["skill_1"]


def test_report(fit_path, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier report")
    assert main(["report", str(fit_path), "--out", str(out), "--quiet"]) == 0
    files = {p.name for p in out.iterdir()}
    figures = {"loadings.png", "skill_correlation.png", "allocation.png", "forest.png"}
    tables = {f"{name}.{ext}" for name in ("summary", "parameters", "allocation") for ext in ("csv", "md")}
    assert figures | tables | {"index.md"} <= files and "stale.txt" not in files
    scaling = sorted(f for f in files if f.startswith("scaling_"))
    assert len(scaling) == 2 and all(f.endswith(".png") for f in scaling)
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # the temporary and the old folder are gone

    index = (out / "index.md").read_text()
    for name in files - {"index.md"}:
        assert f"({name})" in index, name
    params = pd.read_csv(out / "parameters.csv")
    assert list(params.columns) == ["parameter", "estimate", "se", "lower", "upper"]
    assert len(params) == 6 + 2 * 8 + 8 + 8 + 1 and "lam[skill_1, mmlu]" in set(params["parameter"])
    summary = pd.read_csv(out / "summary.csv").set_index("quantity")["value"]
    assert {"marginal_loglik", "aic", "bic", "n_params"} <= set(summary.index)
    assert summary["bic_n"] == "families"  # what BIC's n counts, beside it
    # Enough decimals to compare fits (log-likelihood, AIC and BIC to 0.1 at least), in the CSV and the Markdown.
    attrs = bl.load_fit(fit_path).attrs
    summary_md = (out / "summary.md").read_text()
    for name in ("marginal_loglik", "aic", "bic"):
        assert abs(float(summary[name]) - attrs[name]) < 0.01, (name, summary[name], attrs[name])
        assert f"| {name} | {float(summary[name]):.2f} |" in summary_md
    assert "| parameter | estimate | se | lower | upper |" in (out / "parameters.md").read_text()
    # The allocation on the paper's grid, in the inputs' units (billions of parameters, trillions of tokens).
    allocation = pd.read_csv(out / "allocation.csv")
    fit = bl.load_fit(fit_path)
    sizes, tokens = fit["constant_data"]["size"].values, fit["constant_data"]["tokens"].values
    assert allocation["size_opt"].between(sizes.min() * (1 - 1e-9), sizes.max() * (1 + 1e-9)).all()
    np.testing.assert_allclose(6e21 * allocation["size_opt"] * allocation["tokens_opt"], allocation["flops"], rtol=1e-6)
    np.testing.assert_allclose(allocation["flops"].iloc[[0, -1]], 6e21 * np.array(
        [sizes.min() * tokens.min(), sizes.max() * tokens.max()]), rtol=1e-6)  # fmt: skip
    assert "billions of parameters" in (out / "allocation.md").read_text()


def test_report_tables_of_a_sampled_fit(fit_path):
    """A draw-based fit reports posterior sd and intervals, and for nuts the diagnostics."""
    fit = bl.load_fit(fit_path)
    draws = parameter_draws(fit, n_draws=200, seed=1)
    posterior = xr.Dataset(
        {
            name: (("chain", "draw", *da.dims[1:]), da.values.reshape(2, 100, *da.shape[1:]))
            for name, da in ((name, draws[name]) for name in PARAMETERS)
        },
        coords={d: draws[d] for d in ("covariate", "skill", "benchmark", "skill_other")},
    )
    for name in ("alpha", "theta"):  # the contract's other variables, repeated over the draws
        point = fit["posterior"][name]
        posterior[name] = point.isel(chain=0, draw=0, drop=True).expand_dims(chain=2, draw=100).transpose(
            "chain", "draw", *point.dims[2:])  # fmt: skip
    sampled = fit.copy()
    sampled["posterior"] = xr.DataTree(posterior)
    sampled.attrs["method"] = "nuts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 200 draws fall short of the ESS threshold
        tables = report._tables(sampled, pd.DataFrame())
    params = tables["parameters"][1]
    assert list(params.columns) == ["parameter", "estimate", "sd", "lower", "upper"]
    free = params[params["sd"] > 0]
    assert ((free["lower"] < free["estimate"]) & (free["estimate"] < free["upper"])).all()
    assert "r_hat" in tables["diagnostics"][1].columns


def test_select_k_writes_table_and_plot(tmp_path, monkeypatch, capsys):
    """The command's wiring; the criteria themselves are tested with bl.select_k."""
    table = pd.DataFrame({"K": [1, 2], "marginal_loglik": [100.0, 150.0], "n_params": [20, 30]}).set_index("K")
    table["aic"] = -2 * table["marginal_loglik"] + 2 * table["n_params"]
    table["bic"] = table["aic"] + 10
    from bayes_lsl.selection import Selection

    seen = {}

    def fake_select_k(data, **kw):
        seen.update(kw)
        return Selection(table.loc[kw["Ks"]], {}, kw["bic_n"])

    monkeypatch.setattr("bayes_lsl.selection.select_k", fake_select_k)
    out, plot = tmp_path / "ic.csv", tmp_path / "ic.png"
    argv = ["select-k", "--data", "example", "--Ks", "1", "2", "--out", str(out), "--plot", str(plot), "--quiet"]
    assert main(argv) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out, index_col="K"), table)
    assert plot.stat().st_size > 10_000 and "-160.0" in capsys.readouterr().out
    assert seen["n_jobs"] == 1 and seen["warm_start"]
    assert main([*argv, "--jobs", "2", "--no-warm-start"]) == 0
    assert seen["n_jobs"] == 2 and not seen["warm_start"]


@pytest.mark.parametrize(
    ("argv", "message", "out"),
    [
        (["predict", "{fit}", "{csv:tokens}", "--out", "{tmp}/p.csv"], "lacks column(s) ['tokens']", "p.csv"),
        (["predict", "{fit}", "{csv:foo}", "--out", "{tmp}/p.csv"], "unknown column(s) ['foo']", "p.csv"),
        (["predict", "{fit}", "{tmp}/none.csv", "--out", "{tmp}/p.csv"], "no CSV file", "p.csv"),
        (["predict", "{garbage}", "{csv:}", "--out", "{tmp}/p.csv"], "is not a fit: a fit file is", "p.csv"),
        (["predict", "{not_a_fit}", "{csv:}", "--out", "{tmp}/p.csv"], "not a fit: it lacks attrs", "p.csv"),
        (["predict", "{fit}", "{csv:size=7e9}", "--out", "{tmp}/p.csv"], "size is in billions of parameters", "p.csv"),
        (["predict", "{fit}", "{csv:size=7B}", "--out", "{tmp}/p.csv"], "non-numeric or missing value '7B'", "p.csv"),
        (["allocate", "{fit}", "--flops", "1e40", "--out", "{tmp}/a.csv"], "budgets are FLOPs", "a.csv"),
        (["predict", "{tmp}/none.nc", "{csv:}", "--out", "{tmp}/p.csv"], "no fit file", "p.csv"),
        (["predict", "{fit}", "{csv:}", "--level", "1.5", "--out", "{tmp}/p.csv"], "level must be in", "p.csv"),
        (
            ["allocate", "{fit}", "--flops", "1e22", "--benchmark", "nope", "--out", "{tmp}/a.csv"],
            "unknown benchmark 'nope'",
            "a.csv",
        ),
        (["allocate", "{fit}", "--out", "{tmp}/a.csv"], "no budgets", "a.csv"),
        (["allocate", "{fit}", "--flops", "-1", "--out", "{tmp}/a.csv"], "flops must be positive", "a.csv"),
        (["allocate", "{fit}", "--flops", "lots", "--out", "{tmp}/a.csv"], "invalid float value: 'lots'", "a.csv"),
        (["allocate", "{fit}", "--flops", "1e22", "--skill", "math", "--benchmark", "mmlu"], "not allowed", None),
        (["report", "{fit}", "--out", "{tmp}/no/such/dir"], "does not exist", None),
        (["report", "{fit}", "--out", "{csv:}"], "it is a file", None),
        (["fit", "--data", "example", "--out", "{tmp}/no/fit.nc"], "does not exist", None),
        (["select-k", "--data", "{tmp}/none.csv", "--out", "{tmp}/k.csv"], "not 'example', 'leaderboard'", "k.csv"),
        (["frobnicate"], "invalid choice: 'frobnicate'", None),
    ],
)
def test_bad_input_is_one_line_and_no_file(argv, message, out, fit_path, new_models, tmp_path, capsys):
    garbage, not_a_fit = tmp_path / "garbage.nc", tmp_path / "dataset.nc"
    garbage.write_text("not a fit\n")
    xr.Dataset({"v": ("x", [1.0])}).to_netcdf(not_a_fit, engine="h5netcdf")
    frame = pd.read_csv(new_models)

    def csv(drop_or_add: str) -> str:
        if not drop_or_add:
            return str(new_models)
        if "=" in drop_or_add:  # column=value: that value in the last row
            column, value = drop_or_add.split("=")
            bad = frame.astype({column: object})
            bad.loc[bad.index[-1], column] = value
        else:
            bad = frame.drop(columns=drop_or_add) if drop_or_add in frame else frame.assign(**{drop_or_add: 0.5})
        bad.to_csv(path := tmp_path / "bad.csv", index=False)
        return str(path)

    def fill(arg: str) -> str:
        if arg.startswith("{csv:"):
            return csv(arg[5:-1])
        return arg.format(fit=fit_path, tmp=tmp_path, garbage=garbage, not_a_fit=not_a_fit)

    before = set(tmp_path.iterdir())
    assert main([fill(a) for a in argv]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert message in err
    if out is not None:
        assert not (tmp_path / out).exists()
    assert set(tmp_path.iterdir()) - before <= {tmp_path / "bad.csv"}  # no temporary files left behind


@pytest.mark.parametrize("command", ["predict", "allocate"])
def test_n_draws_is_parameter_draws_and_the_old_spelling_warns(command, monkeypatch, tmp_path, capsys):
    """``--n-draws`` reaches the analysis as ``n_draws``; ``--draws`` (the old name, which
    ``fit`` uses for draws per chain) still does, with a warning naming the new one."""
    seen = {}

    def analysis(fit, *args, n_draws, **kwargs):
        seen["n_draws"] = n_draws
        raise BayesLslError("stopped here")  # what the command does next is tested above

    module = importlib.import_module(f"bayes_lsl.{command.replace('allocate', 'allocation')}")
    monkeypatch.setattr(module, command, analysis)  # (bayes_lsl.predict is also the function)
    monkeypatch.setattr("bayes_lsl.cli._load_fit", lambda path: None)
    inputs = [str(tmp_path / "fit.nc")] + ([str(new_models_csv(tmp_path))] if command == "predict" else [])
    budgets = ["--flops", "1e22"] if command == "allocate" else []
    out = ["--out", str(tmp_path / "out.csv"), "--quiet"]
    assert main([command, *inputs, *budgets, "--n-draws", "123", *out]) == 2
    assert seen["n_draws"] == 123 and "warning" not in capsys.readouterr().err
    assert main([command, *inputs, *budgets, "--draws", "45", *out]) == 2
    assert seen["n_draws"] == 45
    warning, error = capsys.readouterr().err.splitlines()
    assert warning == (f"bayes-lsl: warning: --draws is now --n-draws in 'bayes-lsl {command}' "
                       "(the old name will be removed)")  # fmt: skip
    assert error == "bayes-lsl: error: stopped here"


def new_models_csv(folder):
    path = folder / "new.csv"
    pd.DataFrame({"model": ["m"], "family": ["f"], "size": [7.0], "tokens": [2.0]}).to_csv(path, index=False)
    return path


def test_fit_draws_are_draws_per_chain():
    from bayes_lsl.cli import _parser

    args = _parser().parse_args(["fit", "--method", "nuts", "--draws", "300"])
    assert args.draws == 300 and not hasattr(args, "n_draws")


@pytest.mark.parametrize("error", [RuntimeError("boom"), ValueError("boom"), KeyError("boom")])
def test_a_bug_keeps_its_traceback(error, monkeypatch, capsys):
    """Anything but a user error (a ValueError included) exits 1 with the traceback and a please-report line."""

    def broken():
        raise error

    monkeypatch.setattr("bayes_lsl.cli.load_example", broken)
    assert main(["data", "--data", "example"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert f"{type(error).__name__}: " in err and "in broken" in err  # where it happened
    last = err.splitlines()[-1]
    assert last.startswith("bayes-lsl: internal error (a bug, not your input): please report it")
    assert "bayes-lsl: error:" not in err


@pytest.mark.parametrize("error", [BayesLslError("bad   input\nhere"), DataError("bad input here"),
                                   FileNotFoundError("bad input here")])  # fmt: skip
def test_a_user_error_is_one_line(error, monkeypatch, capsys):
    def refuse():
        raise error

    monkeypatch.setattr("bayes_lsl.cli.load_example", refuse)
    assert main(["data", "--data", "example"]) == 2
    assert _one_error_line(capsys.readouterr().err) == "bayes-lsl: error: bad input here\n"


def test_missing_leaderboard_names_the_flag_and_where_to_get_the_files(tmp_path, monkeypatch, capsys):
    def offline(file, target):
        raise OSError("no network")

    monkeypatch.delenv("BAYES_LSL_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "_download", offline)
    assert main(["data", "--data", "leaderboard", "--quiet"]) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert "pass --data-dir DIR or set the environment variable BAYES_LSL_DATA" in err and "data_dir=" not in err
    assert "https://github.com/felipemaiapolo/statistical-scaling-law/tree/" in err


def test_extrapolation_warns_in_one_line(fit_path, tmp_path, capsys):
    new = tmp_path / "new.csv"
    pd.DataFrame({"model": ["giant"], "family": ["fam000"], "size": [2000.0], "tokens": [2.0]}).to_csv(new, index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", str(fit_path), str(new), "--out", str(out), "--n-draws", "50", "--quiet"]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "extrapolating" in line]
    assert len(warning) == 1 and warning[0].startswith("bayes-lsl: warning: ")
    assert "model 'giant': size 2e+03 B parameters" in warning[0]
    assert (pd.read_csv(out)["extrapolation"] > 20).all()


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help_has_an_example(command, capsys):
    assert main([*command, "--help"]) == 0
    assert "Example: bayes-lsl" in capsys.readouterr().out


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "bayes_lsl", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Example: bayes-lsl" in result.stdout and "allocate" in result.stdout


@pytest.mark.slow  # an MLE then NUTS through the command line: in CI's slow step
def test_fit_nuts_starts_at_the_mle(tmp_path):
    """nuts from the command line: chains start at an MLE fitted first, partially centered parameterization."""
    out = tmp_path / "nuts.nc"
    args = ["fit", "--data", "example", "--K", "2", "--method", "nuts", "--chains", "2", "--tune", "150",
            "--draws", "100", "--out", str(out), "--quiet"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 x 100 draws fail the diagnostics' thresholds, as they should
        assert main(args) == 0
    fitted = bl.load_fit(out)
    info = bl.FitInfo.from_tree(fitted)
    assert fitted.attrs["init"] == "mle-dispersed" and info.parameterization == "partial"
    assert (info.n_chains, info.n_draws) == (2, 100)  # --draws: draws per chain
    assert "log_likelihood" in fitted.children
