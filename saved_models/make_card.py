"""Score a shipped policy with the benchmarks' evaluator and write its README card.

The score comes from ``benchmarks/like_for_like.py``'s evaluator, the one that scores
keras-vpg's and Spinning Up's benchmark runs: 100 episodes, deterministic actions
clipped to the Box, 10 envs stepping together (env i reset with seed 10000 + i).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from like_for_like import evaluate, load_deterministic_policy, run_env_id  # noqa: E402

SEED = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy_dir")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--note", default="", help="a line on how this policy was chosen")
    args = parser.parse_args()
    path = Path(args.policy_dir)
    config = json.loads((path / "config.json").read_text())
    env_id = run_env_id(path)
    returns = np.array(evaluate(load_deterministic_policy(path, None), env_id, args.episodes,
                                num_envs=10, seed=SEED))
    progress = (path / "progress.txt").read_text().splitlines()
    header, last = progress[0].split("\t"), progress[-1].split("\t")
    total_steps = int(float(last[header.index("TotalEnvInteracts")]))
    flags = {k: config[k] for k in ("pi_lr", "vf_lr", "gamma", "lam", "train_v_iters",
                                    "num_envs", "normalize_obs") if k in config}
    card = f"""# {env_id}: VPG policy trained by keras-vpg

- Trained with: `{config.get('backend', 'unknown')}` backend, seed {config['seed']}, \
{len(progress) - 1} epochs x {config['steps_per_epoch']} steps = {total_steps:,} env steps
- Settings: {', '.join(f'{k}={v}' for k, v in flags.items())}, ac_kwargs={config['ac_kwargs']}
- Evaluation (`benchmarks/like_for_like.py`'s evaluator: deterministic actions clipped to \
the Box, {len(returns)} episodes, env i seeded {SEED} + i): mean return \
**{returns.mean():.1f}** (sample std {returns.std(ddof=1):.1f}, min {returns.min():.1f}, \
max {returns.max():.1f})
{f'- {args.note}' if args.note else ''}
```python
import gymnasium as gym, keras, keras_vpg
ac = keras.saving.load_model("saved_models/{path.name}/model.keras")
env = gym.make("{env_id}")
obs, _ = env.reset(seed=0)
action = ac.act(obs, deterministic=True)
```
"""
    (path / "README.md").write_text(card)
    (path / "evaluation.json").write_text(json.dumps(
        {"env": env_id, "episodes": len(returns), "seed": SEED, "deterministic": True,
         "clipped_to_box": True, "mean_return": float(returns.mean()),
         "std_return": float(returns.std(ddof=1)), "min_return": float(returns.min()),
         "max_return": float(returns.max())}, indent=2) + "\n")
    print(card)


if __name__ == "__main__":
    main()
