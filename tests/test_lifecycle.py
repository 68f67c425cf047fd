"""The lifecycle table, walked pair by pair, and the rule that nothing else moves a state."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.models import AuditEvent, Rollout, RolloutEvent, RolloutWave
from dashboard.rollouts import lifecycle

pytestmark = pytest.mark.django_db

R, W = Rollout.State, RolloutWave.State
BUSY_WAVE_STATES = (W.DRAINING, W.LOGGING_OFF, W.SENDING, W.RUNNING, W.SOAKING)


def rollout_in(state: str, waves: tuple[str, ...] = ()) -> Rollout:
    rollout = Rollout.objects.create(created_by="otto", reason="CHG-1", state=state)
    for number, wave_state in enumerate(waves, start=1):
        RolloutWave.objects.create(rollout=rollout, number=number, size=1, state=wave_state)
    return rollout


ROLLOUT_PAIRS = [
    pytest.param(state, action, id=f"{state}-{action}")
    for state in R.values
    for action in lifecycle.ROLLOUT
]


@pytest.mark.parametrize(("state", "action"), ROLLOUT_PAIRS)
def test_every_rollout_action_moves_exactly_the_states_the_table_allows(state, action):
    # One wave in each stage, so every cascade has something to move.
    rollout = rollout_in(state, (W.DONE, W.SOAKING, W.RUNNING, W.SENDING, W.STOPPED, W.PENDING))
    move = lifecycle.ROLLOUT[action]
    allowed = state in move.sources
    assert lifecycle.allows(rollout, action) is allowed

    moved = lifecycle.transition(rollout, action, by="otto", reason="because")

    assert moved is allowed
    stored = Rollout.objects.get(pk=rollout.pk)
    events = RolloutEvent.objects.filter(rollout=rollout, wave=None)
    audits = AuditEvent.objects.filter(rollout=rollout, action=f"rollout.{action}")
    if not allowed:
        assert stored.state == state
        assert not events.exists() and not audits.exists()
        return
    assert stored.state == move.target
    event = events.get()
    assert (event.action, event.from_state, event.to_state) == (action, state, move.target)
    assert (event.actor, event.reason) == ("otto", "because")
    assert audits.get().actor == "otto"
    waves = set(stored.waves.values_list("state", flat=True))
    if action in (
        "pause",
        "hold_for_signoff",
        "halt",
        "cancel",
        "cancel_in_flight",
        "complete",
        "fail",
    ):
        assert not waves & set(BUSY_WAVE_STATES), waves
    if action in ("cancel", "cancel_in_flight", "complete", "fail", "finish_cancel"):
        assert waves <= set(RolloutWave.FINAL_STATES), waves
    if move.target in Rollout.FINAL_STATES:
        assert stored.finished_at is not None


WAVE_PAIRS = [
    pytest.param(state, action, id=f"{state}-{action}")
    for state in W.values
    for action in lifecycle.WAVE
]


@pytest.mark.parametrize(("state", "action"), WAVE_PAIRS)
def test_every_wave_action_moves_exactly_the_states_the_table_allows(state, action):
    rollout = rollout_in(R.RUNNING, (state,))
    wave = rollout.waves.get()
    move = lifecycle.WAVE[action]

    moved = lifecycle.transition(wave, action, rollout=rollout)

    assert moved is (state in move.sources)
    wave.refresh_from_db()
    events = RolloutEvent.objects.filter(rollout=rollout, wave=1)
    if moved:
        assert wave.state == move.target
        assert events.get().from_state == state
    else:
        assert wave.state == state and not events.exists()


def test_an_unknown_action_is_refused_loudly():
    rollout = rollout_in(R.RUNNING)
    with pytest.raises(lifecycle.UnknownAction):
        lifecycle.transition(rollout, "explode")
    with pytest.raises(lifecycle.UnknownAction):
        lifecycle.allows(rollout, "explode")


def test_resume_restarts_stopped_waves_from_their_first_stage():
    rollout = rollout_in(R.RUNNING, (W.DONE, W.SENDING, W.PENDING))
    assert lifecycle.transition(rollout, "pause")
    assert list(rollout.waves.values_list("state", flat=True)) == [W.DONE, W.STOPPED, W.PENDING]
    assert lifecycle.transition(rollout, "resume")
    assert list(rollout.waves.values_list("state", flat=True)) == [W.DONE, W.PENDING, W.PENDING]


def test_cancelling_during_a_soak_leaves_the_soaked_wave_done_and_the_rest_cancelled():
    rollout = rollout_in(R.RUNNING, (W.SOAKING, W.PENDING))
    assert lifecycle.transition(rollout, "cancel")
    assert list(rollout.waves.values_list("state", flat=True)) == [W.DONE, W.CANCELLED]


def test_a_replayed_transition_changes_nothing_and_records_nothing():
    rollout = rollout_in(R.RUNNING)
    assert lifecycle.transition(rollout, "pause")
    stale_copy = Rollout.objects.get(pk=rollout.pk)
    stale_copy.state = R.RUNNING  # what a second request read before the first committed
    assert not lifecycle.transition(stale_copy, "pause")
    assert RolloutEvent.objects.filter(rollout=rollout).count() == 1


def test_a_hold_for_signoff_pauses_with_its_notification_and_resumes_like_a_pause(monkeypatch):
    sent = []
    monkeypatch.setattr(lifecycle.notify, "notify", lambda event, rid: sent.append(event))
    rollout = rollout_in(R.RUNNING, (W.DONE, W.PENDING))
    assert lifecycle.transition(rollout, "hold_for_signoff")
    assert (rollout.state, sent) == (R.PAUSED, ["signoff_needed"])
    assert "signoff_needed" in lifecycle.notify.EVENTS
    assert lifecycle.allows(rollout, "resume") and lifecycle.allows(rollout, "cancel")
    assert lifecycle.transition(rollout, "resume", by="otto")
    assert list(rollout.waves.values_list("state", flat=True)) == [W.DONE, W.PENDING]


def test_the_ui_asks_the_table_for_follow_ups_too():
    assert lifecycle.allowed(rollout_in(R.FAILED)) >= {"retry", "revert"}
    assert not {"retry", "revert", "pause"} & lifecycle.allowed(rollout_in(R.QUEUED))
    assert "confirm" in lifecycle.allowed(rollout_in(R.PLANNED))


# --- nothing but lifecycle.py writes Rollout.state or RolloutWave.state -----------------------

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard"
ALLOWED_WRITER = DASHBOARD / "rollouts" / "lifecycle.py"
# Receivers that hold rollouts or waves (as opposed to RolloutServer rows, which move freely).
STATEFUL = ("Rollout.objects", "RolloutWave.objects", "waves", "rollout", "wave")
ROW_HINTS = ("RolloutServer", "servers", "rows", "row", "claimed", "SyncRun")


def _stray_state_writes(source: str, filename: str) -> list[str]:
    """Lines that write a rollout's or a wave's `state` outside lifecycle.transition()."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = ast.unparse(node.func.value)
            touches_rows = any(hint in receiver for hint in ROW_HINTS)
            if node.func.attr in ("update", "create", "update_or_create", "bulk_update"):
                # `**changes` could carry a state too: a writer must name its columns.
                writes_state = any(k.arg in ("state", None) for k in node.keywords) or any(
                    "state" in ast.unparse(a) for a in node.args if node.func.attr == "bulk_update"
                )
                stateful = any(s in receiver for s in STATEFUL) and not touches_rows
                # A new row starts in a state of its own choosing; only moves are guarded.
                if writes_state and stateful and node.func.attr != "create":
                    found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:80]}")
            if node.func.attr == "save":
                fields = next((k.value for k in node.keywords if k.arg == "update_fields"), None)
                saves_state = fields is None or "state" in ast.unparse(fields)
                if saves_state and any(s in receiver for s in STATEFUL) and not touches_rows:
                    found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:80]}")
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "state":
                    owner = ast.unparse(target.value)
                    if any(s in owner for s in STATEFUL) and not any(h in owner for h in ROW_HINTS):
                        found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_nothing_but_the_lifecycle_writes_a_rollout_or_wave_state():
    strays = []
    for path in sorted(DASHBOARD.rglob("*.py")):
        if path == ALLOWED_WRITER or "migrations" in path.parts:
            continue
        strays += _stray_state_writes(path.read_text(), str(path.relative_to(DASHBOARD)))
    assert not strays, "state writes outside rollouts/lifecycle.py:\n" + "\n".join(strays)


@pytest.mark.parametrize(
    "snippet",
    [
        "Rollout.objects.filter(pk=1).update(state='running')",
        "RolloutWave.objects.filter(pk=wave.pk).update(state=new_state, sent_at=now)",
        "rollout.waves.filter(number=1).update(state='done')",
        "rollout.state = 'paused'\nrollout.save(update_fields=['state'])",
        "wave.save()",
        "RolloutWave.objects.filter(pk=wave.pk).update(**changes)",
    ],
)
def test_the_scan_catches_the_writes_it_is_meant_to_catch(snippet):
    assert _stray_state_writes(snippet, "planted.py")


@pytest.mark.parametrize(
    "snippet",
    [
        "RolloutServer.objects.filter(pk=1).update(state='failed')",
        "rollout.servers.filter(state='failed').update(state='skipped')",
        "rows.update(state='cancelled')",
        "rollout.save(update_fields=['plan_fingerprint', 'updated_at'])",
        "Rollout.objects.create(created_by='x')",
    ],
)
def test_the_scan_leaves_server_rows_and_other_columns_alone(snippet):
    assert not _stray_state_writes(snippet, "fine.py")


def test_the_import_layers_hold():
    """pyproject.toml's import contracts (what `make lint` checks), run by the test suite too,
    so a module importing upward fails here as well as in lint."""
    root = DASHBOARD.parent
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-2000:]
