"""What a search hands to its users: the answer's genotype document, and the policy's greedy genotype.

The document of a search (`auxnas export`, `GET /searches/{id}/best`, `best.json` of `auxnas
search`) is genotype JSON version 2: the genotype with `recommended` and `answer`, the stored
answer's figures (`controller.protocol`). When the answer is a module, it is that module with
`recommended: true`. When the answer is Joint (no module beats it on the fresh seeds) or the search
skipped confirmation, it is the module the verdict quotes (the best the confirmation tested, or
the best racing candidate) with `recommended: false`: the figures that say why not travel with it.
Before a search has an answer (running, or stored before answers existed) it is the best trial
so far by the rule below, with `recommended: false` and `answer: null`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from auxnas.controller.checkpoint import CheckpointDir, CheckpointError
from auxnas.controller.config import SearchConfig
from auxnas.controller.status import TrialStatus
from auxnas.controller.storage import TrialRecord
from auxnas.search_space import Genotype, parse_genotype

# The one rule for "the best trial", used by the driver, the CLI, the REST API and the plots
# (db.views expresses the same rule in SQL from these constants): the highest reward among
# fully evaluated genotypes of the search phase, the earliest on ties. Joint has no genotype,
# cached trials repeat an earlier one, and a pruned trial's reward is only a first-stage one.
BEST_KINDS = ("basic", "candidate")
BEST_STATUS = TrialStatus.SUCCEEDED
BEST_PHASE = "search"


def is_best_eligible(t: TrialRecord) -> bool:
    return (
        t.kind in BEST_KINDS
        and t.status == BEST_STATUS
        and t.phase == BEST_PHASE
        and t.reward is not None
        and t.genotype is not None
    )


def best_trial(trials: Iterable[TrialRecord]) -> TrialRecord | None:
    best = None
    for t in trials:
        if is_best_eligible(t) and (
            best is None or t.reward > best.reward or (t.reward == best.reward and t.index < best.index)
        ):
            best = t
    return best


# what the exported document repeats of the stored answer
ANSWER_SUMMARY = (
    "verdict",
    "recommended",
    "module",
    "confirmed",
    "confirm_seeds",
    "confidence",
    "correction",
    "over_joint",
    "over_basic",
    "racing",
    "seeds",
)


def answer_trial(answer: dict[str, Any] | None) -> int | None:
    """Index of the trial whose genotype the answer's document carries (None: it names none)."""
    from auxnas.controller.protocol import answer_module

    named = answer_module(answer)
    return named[1]["trial"] if named else None


def answer_document(
    trial: TrialRecord, search_id: int, search_name: str, answer: dict[str, Any] | None
) -> dict[str, Any]:
    """Genotype JSON v2 of `trial`: the answer's module (`answer_trial`), or with no answer yet
    the best trial so far (`recommended: false`, `answer: null`)."""
    genotype = parse_genotype(trial.genotype)
    search = {"id": search_id, "name": search_name, "trial": trial.index}
    summary = {k: answer.get(k) for k in ANSWER_SUMMARY} if answer else None
    return genotype.to_json(
        reward=trial.reward,
        metrics=trial.metrics,
        search=search,
        recommended=bool(answer and answer.get("recommended")),
        answer=summary,
    )


def greedy_genotype(config: SearchConfig, checkpoint_dir: str | Path) -> Genotype:
    """The genotype the trained policy prefers: argmax at every step, each choice fed back."""
    import numpy as np
    import torch
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.rl_module import RLModule

    ckpt = CheckpointDir(checkpoint_dir)
    state = ckpt.load_state()
    if state is None:
        raise CheckpointError(f"{ckpt.path}: no checkpoint yet (no controller iteration finished)")
    if state.get("strategy") != "ppo":
        raise CheckpointError(f"{ckpt.path}: strategy {state.get('strategy')!r} has no policy to decode")
    space = config.search_space()
    if state.get("space") != space.to_dict():
        raise CheckpointError(f"{ckpt.path}: checkpoint belongs to another search space")
    module_dir = ckpt.strategy_dir(state) / "algorithm" / "learner_group" / "learner" / "rl_module"
    module = RLModule.from_checkpoint(str((module_dir / "default_policy").resolve()))

    masks = np.asarray(space.action_masks(), dtype=np.float32)
    state_in = {k: torch.from_numpy(v).unsqueeze(0) for k, v in module.get_initial_state().items()}
    prev = space.max_choices
    tokens: list[int] = []
    with torch.no_grad():
        for pos in range(space.num_tokens):
            batch = {
                Columns.OBS: {
                    "prev_token": torch.tensor([[prev]]),
                    "position": torch.tensor([[pos]]),
                    "action_mask": torch.from_numpy(masks[pos]).view(1, 1, -1),
                },
                Columns.STATE_IN: state_in,
            }
            out = module.forward_inference(batch)
            prev = int(out[Columns.ACTION_DIST_INPUTS][0, -1].argmax())
            tokens.append(prev)
            state_in = out[Columns.STATE_OUT]
    return Genotype(space, tuple(tokens))
