"""Fast tests of the demo benchmark's page (synthetic records)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.demo import markdown, pair


def _record(pairs: list[dict]) -> dict:
    return {"recorded_at": "2026-12-02 17:00", "cpus": 2, "loadavg_start": [1.0], "loadavg_end": [2.0], "pairs": pairs,
            "breakdowns": [{"whole process": 10.0}], "breakdown_median": {"whole process": 10.0}, "floors": []}  # fmt: skip


def test_the_page_sets_raysweep_against_optuna_and_the_hand_written_ray_tune_script_round_by_round() -> None:
    pairs = [
        {"raysweep_s": 10.0, "optuna_s": 2.0, "ratio": 5.0, "tune_s": 12.0, "tune_mlflow_s": 16.0},
        {"raysweep_s": 9.0, "optuna_s": 2.0, "ratio": 4.5, "tune_s": 11.0, "tune_mlflow_s": 18.0},
    ]
    page = markdown(_record(pairs))
    assert "| ratio, pair by pair (2 pairs, A B A B) | 4.75 (4.50-5.00)x | <= 3x: **missed** |" in page
    turned = markdown(_record([p | {"order": ["raysweep", "optuna", "tune", "tune_mlflow"]} for p in pairs]))
    assert "| ratio, round by round (2 rounds, the order turned by one each round) | 4.75 (4.50-5.00)x |" in turned
    assert "| the Ray Tune script (no tracking) against the Optuna script, round by round | 5.75 (5.50-6.00)x | |" in page
    assert "| raysweep against the Ray Tune script with MLflow, round by round | 0.56 (0.50-0.62)x | |" in page
    assert "| raysweep against the Ray Tune script with no tracking, round by round | 0.83 (0.82-0.83)x | |" in page
    assert "machine where raysweep never ran" not in page  # records from before that command keep their page
    first = markdown(_record([p | {"raysweep_first_s": p["raysweep_s"] + 2.0} for p in pairs]))
    assert "| the same on a machine where raysweep never ran (MLflow builds the store's tables), whole process | 11.50 (11.00-12.00) | |" in first
    assert "| its ratio to the Optuna script, round by round | 5.75 (5.50-6.00)x | <= 3x: **missed** |" in first


def test_a_record_without_the_ray_tune_script_keeps_its_page() -> None:
    page = markdown(_record([{"raysweep_s": 6.0, "optuna_s": 2.0, "ratio": 3.0}]))
    assert "| ratio, pair by pair (1 pairs, A B A B) | 3.00x | <= 3x: **met** |" in page
    assert "Ray Tune script" not in page


def test_the_order_of_a_round_turns_by_one_each_round(monkeypatch, tmp_path) -> None:
    from benchmarks import demo

    ran: list[str] = []

    def timed(command: list[str], cwd, env) -> tuple[float, object]:
        name = "tune_mlflow" if "--mlflow" in command else "tune" if "tune_demo.py" in command[-1] else "optuna" if "optuna_demo.py" in command[-1] else "raysweep"
        if name == "raysweep" and env:
            # a machine where raysweep never ran: an empty cache of its own, in the run's own folder
            assert env["XDG_CACHE_HOME"].startswith(str(cwd)) and not Path(env["XDG_CACHE_HOME"]).exists()
            assert env["MPLCONFIGDIR"].endswith("matplotlib")
            name = "raysweep_first"
        ran.append(name)
        seconds = {"raysweep": 10.0, "raysweep_first": 11.0, "optuna": 2.0, "tune": 11.0, "tune_mlflow": 16.0}[name]
        return seconds, type("Done", (), {"stdout": "{}"})()

    monkeypatch.setattr(demo, "_timed", timed)
    rounds = [pair(tmp_path, turn=turn) for turn in range(5)]
    assert [r["order"] for r in rounds] == [
        ["raysweep", "raysweep_first", "optuna", "tune", "tune_mlflow"],
        ["raysweep_first", "optuna", "tune", "tune_mlflow", "raysweep"],
        ["optuna", "tune", "tune_mlflow", "raysweep", "raysweep_first"],
        ["tune", "tune_mlflow", "raysweep", "raysweep_first", "optuna"],
        ["tune_mlflow", "raysweep", "raysweep_first", "optuna", "tune"],
    ]  # fmt: skip
    assert ran == [name for r in rounds for name in r["order"]]
    assert {r["ratio"] for r in rounds} == {5.0} and rounds[0]["tune_mlflow_s"] == 16.0 and rounds[0]["raysweep_first_s"] == 11.0


def test_the_first_result_is_set_against_the_lower_of_the_two_floors() -> None:
    record = _record([{"raysweep_s": 7.0, "optuna_s": 2.0, "ratio": 3.5}])
    record["breakdown_median"] = {"command to the first result": 6.5, "whole process": 7.0}
    record["floors"] = [3.9, 2.9, 3.9]  # Ray's own settings: its raylet waits a second in most starts
    page = markdown(record)
    assert "| first trial's result, from the command | 6.50 (2.60 above the floor) | <= 2 s above: **missed** |" in page
    record["floors_tuned"] = [2.9, 2.8, 3.0]
    page = markdown(record)
    assert "| the same with the settings raysweep starts its Ray with (the object store retried every 0.1 s, not 1 s) | 2.90 (2.80-3.00) | |" in page
    assert "| first trial's result, from the command | 6.50 (3.60 above the lower floor) | <= 2 s above: **missed** |" in page
    record["breakdown_median"]["command to the first result"] = 4.5
    assert "(1.60 above the lower floor) | <= 2 s above: **met** |" in markdown(record)


def test_the_page_sets_the_ray_tune_scripts_first_result_against_the_same_floor_as_raysweeps() -> None:
    pairs = [{"raysweep_s": 10.0, "optuna_s": 2.0, "ratio": 5.0, "tune_s": 12.0, "tune_mlflow_s": 16.0, "tune": {"first_result_s": s}}
             for s in (9.0, 10.0, 11.0)]  # fmt: skip
    record = _record(pairs) | {"floors": [3.5, 3.6], "floors_tuned": [3.0, 3.2], "breakdown_median": {"command to the first result": 7.0}}
    page = markdown(record)
    assert "| first trial's result, from the command | 7.00 (3.90 above the lower floor) | <= 2 s above: **missed** |" in page
    assert "| the Ray Tune script's first result, from its first line | 10.00 (9.00-11.00) (6.90 above the lower floor) | |" in page
    # records from before the Ray Tune script timed its first result keep their page
    assert "first result, from its first line" not in markdown(_record(pairs[:1]) | {"pairs": [{k: v for k, v in pairs[0].items() if k != "tune"}], "floors": [3.0]})
