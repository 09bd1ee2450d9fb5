"""The gallery shipped in assets/gallery: five finished runs, weights only, small, evaluated at K = 64."""

import json
from pathlib import Path

import pytest

from infalign_core import arena_results, challengers, ctrl, gallery, gallery_build, runs

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "assets" / "gallery"
pytestmark = pytest.mark.gallery


def test_the_gallery_holds_the_five_runs_in_at_most_20_mb():
    assert sorted(p.name for p in SHIPPED.iterdir() if p.is_dir()) == sorted(gallery.RUNS)
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size <= 20 * 1024 * 1024, f"{size / 1e6:.1f} MB"


@pytest.mark.parametrize("run_id", sorted(gallery.RUNS))
def test_each_gallery_run_is_finished_weights_only_and_evaluated_at_k_64(run_id, monkeypatch):
    monkeypatch.setenv("INFALIGN_GALLERY_DIR", str(SHIPPED))
    run_dir = SHIPPED / run_id
    config = json.loads((run_dir / runs.CONFIG_FILE).read_text())
    status = json.loads((run_dir / runs.STATUS_FILE).read_text())
    assert status["state"] == "finished" and status["gallery"] is True
    assert (
        config["kl_target"] == ctrl.RECOMMENDED_RUN["kl_target"]
        and config["transform"] == gallery.RUNS[run_id]["transform"]
    )
    # Trained as the recommended run is now: its update rule and KL controller (issue 17).
    recommended = ctrl.recommended_config()
    assert (config.get("algorithm"), config.get("kl_controller")) == (
        recommended.algorithm,
        recommended.kl_controller,
    )
    checkpoint = ctrl.checkpoint_path(run_dir)
    assert checkpoint is not None and not (checkpoint / ctrl.TRAINER_STATE).exists()
    assert len(ctrl.read_metrics(run_dir)) == config["steps"]
    (record,) = arena_results.load_arena_results(run_dir)
    assert record["settings"]["k"] == gallery_build.ARENA_K and record["settings"]["n"] == 4
    assert record["picks"]["best"] and record["picks"]["worst"]
    assert challengers.resolve_challenger(run_id).run_dir == run_dir  # the id works as a run id
