"""Evaluate a shipped policy (deterministic, 100 seeded episodes) and write its README card."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from keras_vpg.serving import load_model, make_env_from_run, run_policy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("policy_dir")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    path = Path(args.policy_dir)
    config = json.loads((path / "config.json").read_text())
    ac = load_model(path / "model.keras")
    env = make_env_from_run(path)
    results = run_policy(env, lambda o: ac.act(o, deterministic=True),
                         num_episodes=args.episodes, render=False, seed=0, verbose=False)
    returns = np.array([r for r, _ in results])
    progress = (path / "progress.txt").read_text().splitlines()
    header, last = progress[0].split("\t"), progress[-1].split("\t")
    total_steps = int(float(last[header.index("TotalEnvInteracts")]))
    env_id = json.loads(config["env_spec"])["id"]
    card = f"""# {env_id}: VPG policy trained by keras-vpg

- Trained with: `{config.get('backend', 'unknown')}` backend, seed {config['seed']}, \
{len(progress) - 1} epochs x {config['steps_per_epoch']} steps = {total_steps} env steps
- Settings: pi_lr={config['pi_lr']}, vf_lr={config['vf_lr']}, gamma={config['gamma']}, \
lam={config['lam']}, train_v_iters={config['train_v_iters']}, ac_kwargs={config['ac_kwargs']}
- Evaluation (deterministic policy, {args.episodes} episodes, env seeded 0): mean return \
**{returns.mean():.1f}** (std {returns.std():.1f}, min {returns.min():.1f}, max {returns.max():.1f})

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
        {"env": env_id, "episodes": args.episodes, "mean_return": float(returns.mean()),
         "std_return": float(returns.std()), "min_return": float(returns.min())}, indent=2))
    print(card)


if __name__ == "__main__":
    main()
