#!/usr/bin/env python3
"""Golden numbers for `lusso ope`, produced by Open Bandit Pipeline (obp 0.5.7).

For every log of the Open Bandit Dataset small sample ({random,bts} x {all,men,women}) and every
evaluation policy of that log's campaign (tools/obp/policies/{uniform,skewed,greedy}_<campaign>.csv),
this script

  1. reads the log CSV itself with the csv module (every field is text; nothing goes through pandas):
       action   = int(item_id)
       position = int(position) - 1          (obp: rankdata(position, "dense") - 1; asserted equal)
       reward   = int(click)
       pscore   = float(propensity_score)    (the logged text, never 1/n_actions)
  2. builds obp's `bandit_feedback` dict from those arrays (file row order),
  3. reads the policy CSV (`action,position,prob`, position 0-based) back from disk and builds
     action_dist[i, a, p] = prob(a, p) for every round i (shape (n_rounds, n_actions, len_list)),
  4. builds the fixed reward model estimated_rewards_by_reg_model[i, a, p] = q_hat(a, p), the empirical
     mean click of (action a, position p) over the same log, 0.0 for pairs that never occur in the log,
  5. runs obp's IPW, SNIPW, DM and DR through OffPolicyEvaluation.estimate_policy_values AND each
     estimator's estimate_policy_value (asserts both agree), and estimate_interval(alpha=0.05,
     n_bootstrap_samples=10000, random_state=12345),
  6. re-computes the four point estimates with plain Python floats (the formulas of README.md, i.e. what the
     Rust implementation will do) and asserts they agree with obp to 1e-12,
  7. cross-checks against obp's own loader OpenBanditDataset(data_path=...) (which uses pandas and sorts by
     timestamp), and re-implements obp's bootstrap (MT19937 + masked rejection) to check the documented
     recipe reproduces obp's intervals,
  8. writes golden/<behavior>_<campaign>__<policy>.json and golden/index.json.

The output is deterministic (no timestamps): re-running must leave `git diff tools/obp` empty.
Run it through make_golden.sh, which provides the obp venv.
"""
import argparse
import csv
import hashlib
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np

import obp
from obp.dataset import OpenBanditDataset
from obp.ope import DirectMethod
from obp.ope import DoublyRobust
from obp.ope import InverseProbabilityWeighting
from obp.ope import OffPolicyEvaluation
from obp.ope import SelfNormalizedInverseProbabilityWeighting

BEHAVIOR_POLICIES = ["random", "bts"]
CAMPAIGNS = ["all", "men", "women"]
POLICY_KINDS = ["uniform", "skewed", "greedy"]
ESTIMATORS = ["ipw", "snipw", "dm", "dr"]

ALPHA = 0.05
N_BOOTSTRAP = 10000
RANDOM_STATE = 12345
GREEDY_MASS = 0.9
POINT_TOLERANCE = 1e-6  # the requirement
SELF_CHECK_TOLERANCE = 1e-12  # what this script asserts between obp and the plain formulas


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- log


def read_log(path: Path) -> dict:
    """Read one OBD log CSV with the csv module; every field arrives as text."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header[0] != "":
            raise ValueError(f"{path}: expected an unnamed leading index column, got {header[0]!r}")
        col = {name: i for i, name in enumerate(header)}
        for name in ["timestamp", "item_id", "position", "click", "propensity_score"]:
            if name not in col:
                raise ValueError(f"{path}: missing column {name}")
        action, position_raw, reward, pscore, timestamp = [], [], [], [], []
        for line_no, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(f"{path}:{line_no}: {len(row)} fields, header has {len(header)}")
            # No row is skipped: anything unparsable or out of range aborts the script.
            a = int(row[col["item_id"]])
            p = int(row[col["position"]])
            r = int(row[col["click"]])
            ps = float(row[col["propensity_score"]])
            if a < 0 or r not in (0, 1) or not (ps > 0.0 and math.isfinite(ps)):
                raise ValueError(f"{path}:{line_no}: bad row {row[:6]}")
            action.append(a)
            position_raw.append(p)
            reward.append(r)
            pscore.append(ps)
            timestamp.append(row[col["timestamp"]])

    # obp's OpenBanditDataset.load_raw_data: position = rankdata(position, "dense") - 1.
    distinct = sorted(set(position_raw))
    dense = {v: i for i, v in enumerate(distinct)}
    position = [dense[p] for p in position_raw]
    if position != [p - 1 for p in position_raw]:
        raise ValueError(f"{path}: dense-rank positions differ from position-1 (positions {distinct})")

    return dict(
        action=action,
        position=position,
        position_values_in_file=distinct,
        reward=reward,
        pscore=pscore,
        timestamp=timestamp,
        n_rounds=len(action),
        len_list=len(distinct),
        file_sorted_by_timestamp=timestamp == sorted(timestamp),
        distinct_timestamps=len(set(timestamp)),
    )


def count_items(item_context: Path) -> int:
    with open(item_context, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    ids = sorted(int(r[header.index("item_id")]) for r in body)
    if ids != list(range(len(ids))):
        raise ValueError(f"{item_context}: item ids are not 0..n-1")
    return len(ids)


def reward_model(log: dict, n_actions: int) -> list:
    """q_hat[a][p] = clicks / impressions of (a, p) in the log; 0.0 where (a, p) never occurs."""
    clicks = [[0] * log["len_list"] for _ in range(n_actions)]
    count = [[0] * log["len_list"] for _ in range(n_actions)]
    for a, p, r in zip(log["action"], log["position"], log["reward"]):
        clicks[a][p] += r
        count[a][p] += 1
    q = [[clicks[a][p] / count[a][p] if count[a][p] else 0.0 for p in range(log["len_list"])]
         for a in range(n_actions)]
    unobserved = sum(1 for a in range(n_actions) for p in range(log["len_list"]) if count[a][p] == 0)
    return q, unobserved


# ------------------------------------------------------------------------------------------ policies


def write_policy(path: Path, probs: list) -> None:
    """probs[a][p]; rows ordered by position, then action; prob written with repr (round-trips)."""
    n_actions, len_list = len(probs), len(probs[0])
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write("action,position,prob\n")
        for p in range(len_list):
            for a in range(n_actions):
                f.write(f"{a},{p},{probs[a][p]!r}\n")


def make_policies(policy_dir: Path, campaign: str, n_actions: int, len_list: int, random_log: dict) -> dict:
    paths = {}
    # uniform: 1/n_actions everywhere
    uniform = [[1.0 / n_actions] * len_list for _ in range(n_actions)]
    # skewed: prob(a, p) proportional to ((a*7 + p*3) % 11) + 1, normalised per position
    skewed = [[0.0] * len_list for _ in range(n_actions)]
    for p in range(len_list):
        w = [((a * 7 + p * 3) % 11) + 1 for a in range(n_actions)]
        total = sum(w)
        for a in range(n_actions):
            skewed[a][p] = w[a] / total
    # greedy: GREEDY_MASS on the item with the highest empirical CTR at that position in the random log of the
    # campaign (ties -> smallest item id; never-shown items have CTR 0), the rest spread uniformly
    q_random, _ = reward_model(random_log, n_actions)
    greedy = [[0.0] * len_list for _ in range(n_actions)]
    best = []
    for p in range(len_list):
        b = max(range(n_actions), key=lambda a: (q_random[a][p], -a))
        best.append(b)
        for a in range(n_actions):
            greedy[a][p] = GREEDY_MASS if a == b else (1.0 - GREEDY_MASS) / (n_actions - 1)
    for kind, probs in [("uniform", uniform), ("skewed", skewed), ("greedy", greedy)]:
        path = policy_dir / f"{kind}_{campaign}.csv"
        write_policy(path, probs)
        paths[kind] = path
    return paths, best


def read_policy(path: Path, n_actions: int, len_list: int) -> list:
    """Parse `action,position,prob` back from disk: this (not the in-memory table) is what gets evaluated."""
    probs = [[None] * len_list for _ in range(n_actions)]
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        if next(reader) != ["action", "position", "prob"]:
            raise ValueError(f"{path}: header must be action,position,prob")
        for row in reader:
            a, p, pr = int(row[0]), int(row[1]), float(row[2])
            if probs[a][p] is not None:
                raise ValueError(f"{path}: duplicate ({a},{p})")
            probs[a][p] = pr
    for p in range(len_list):
        col = [probs[a][p] for a in range(n_actions)]
        if any(v is None or v < 0 for v in col) or abs(sum(col) - 1.0) > 1e-9:
            raise ValueError(f"{path}: position {p} is not a distribution over {n_actions} actions")
    return probs


# ------------------------------------------------------------------------------ plain reference maths


def plain_estimates(log: dict, pi: list, q: list) -> dict:
    """The README formulas with Python floats and left-to-right sums (what a straightforward Rust port does)."""
    n = log["n_rounds"]
    sum_w = sum_wr = sum_dm = sum_corr = 0.0
    for a, p, r, ps in zip(log["action"], log["position"], log["reward"], log["pscore"]):
        w = pi[a][p] / ps
        sum_w += w
        sum_wr += w * r
        num = den = 0.0
        for b in range(len(pi)):
            num += pi[b][p] * q[b][p]
            den += pi[b][p]
        sum_dm += num / den
        sum_corr += w * (r - q[a][p])
    return dict(
        ipw=sum_wr / n,
        snipw=sum_wr / sum_w,
        dm=sum_dm / n,
        dr=(sum_dm + sum_corr) / n,
        _sum_w=sum_w,
        _sum_w_reward=sum_wr,
    )


def bootstrap_reimplementation(samples: np.ndarray, seed: int, n_boot: int, alpha: float) -> dict:
    """obp.utils.estimate_confidence_interval_by_bootstrap without calling RandomState.choice.

    RandomState(seed) = MT19937 seeded with init_genrand(seed); choice(samples, size=n) with replacement draws
    n indices, each by repeating u = genrand_int32() & mask until u <= n-1 (mask = smallest 2^k-1 >= n-1).
    The generator is shared by the n_boot resamples of one call.
    """
    n = samples.shape[0]
    rng_max = n - 1
    mask = 1
    while mask < rng_max:
        mask = (mask << 1) | 1
    bg = np.random.MT19937()
    bg._legacy_seeding(seed)
    means = np.empty(n_boot)
    pending = np.empty(0, dtype=np.uint64)
    chunk_rows = 200
    done = 0
    while done < n_boot:
        rows = min(chunk_rows, n_boot - done)
        need = rows * n
        while pending.shape[0] < need:
            raw = bg.random_raw(int((need - pending.shape[0]) * (mask + 1) / n) + 1024)
            m = raw & np.uint64(mask)
            pending = np.concatenate([pending, m[m <= np.uint64(rng_max)]])
        idx = pending[:need].astype(np.int64).reshape(rows, n)
        pending = pending[need:]
        for k in range(rows):
            means[done + k] = np.mean(samples[idx[k]])
        done += rows
    # NB: leftover accepted draws are fine to drop; one interval = one fresh generator.
    return {
        "mean": float(np.mean(means)),
        "lower": float(np.percentile(means, 100 * (alpha / 2))),
        "upper": float(np.percentile(means, 100 * (1.0 - alpha / 2))),
    }


# ---------------------------------------------------------------------------------------- obp calls


def make_estimators():
    return [
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
        DirectMethod(),
        DoublyRobust(),
    ]


def obp_inputs(action, position, reward, pscore, n_actions, pi, q):
    n = action.shape[0]
    pi_arr = np.array(pi, dtype=float)  # (n_actions, len_list)
    q_arr = np.array(q, dtype=float)
    action_dist = np.ascontiguousarray(np.broadcast_to(pi_arr, (n,) + pi_arr.shape))
    est_rewards = np.ascontiguousarray(np.broadcast_to(q_arr, (n,) + q_arr.shape))
    bandit_feedback = dict(
        n_rounds=n,
        n_actions=n_actions,
        action=action,
        position=position,
        reward=reward,
        pscore=pscore,
        context=np.zeros((n, 1)),  # OffPolicyEvaluation requires the key; no estimator here reads it
        action_context=np.zeros((n_actions, 1)),
    )
    return bandit_feedback, action_dist, est_rewards


def obp_point_estimates(bandit_feedback, action_dist, est_rewards) -> dict:
    ope = OffPolicyEvaluation(bandit_feedback=bandit_feedback, ope_estimators=make_estimators())
    values = ope.estimate_policy_values(action_dist=action_dist, estimated_rewards_by_reg_model=est_rewards)
    return {k: float(v) for k, v in values.items()}


def round_rewards(est, bandit_feedback, action_dist, est_rewards) -> np.ndarray:
    return est._estimate_round_rewards(
        reward=bandit_feedback["reward"],
        action=bandit_feedback["action"],
        position=bandit_feedback["position"],
        pscore=bandit_feedback["pscore"],
        action_dist=action_dist,
        estimated_rewards_by_reg_model=est_rewards,
    )


def interval_dict(raw: dict) -> dict:
    lo = [k for k in raw if "(lower)" in k][0]
    hi = [k for k in raw if "(upper)" in k][0]
    return {"mean": float(raw["mean"]), "lower": float(raw[lo]), "upper": float(raw[hi])}


# ---------------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default="/work/shared/data", type=Path,
                    help="directory holding open_bandit_dataset/ (paths in the JSON are relative to it)")
    ap.add_argument("--out", default=Path(__file__).resolve().parent, type=Path,
                    help="tools/obp directory (policies/ and golden/ are written below it)")
    ap.add_argument("--verify-bootstrap", choices=["none", "first", "all"], default="first",
                    help="re-implement obp's bootstrap for the first case (default) or every case")
    args = ap.parse_args()

    obd = args.data_root / "open_bandit_dataset"
    policy_dir = args.out / "policies"
    golden_dir = args.out / "golden"
    policy_dir.mkdir(parents=True, exist_ok=True)
    golden_dir.mkdir(parents=True, exist_ok=True)

    versions = {"obp": obp.__version__, "numpy": np.__version__, "python": platform.python_version()}
    if versions["obp"] != "0.5.7":
        raise SystemExit(f"need obp 0.5.7, found {versions['obp']}")

    # logs and policies ----------------------------------------------------------------------------
    logs = {}
    for bp in BEHAVIOR_POLICIES:
        for c in CAMPAIGNS:
            path = obd / bp / c / f"{c}.csv"
            log = read_log(path)
            n_items = count_items(obd / bp / c / "item_context.csv")
            if max(log["action"]) >= n_items:
                raise ValueError(f"{path}: item_id beyond item_context.csv")
            log.update(path=path, n_actions=n_items, behavior_policy=bp, campaign=c)
            logs[(bp, c)] = log

    policy_files, greedy_best = {}, {}
    for c in CAMPAIGNS:
        rl = logs[("random", c)]
        policy_files[c], greedy_best[c] = make_policies(policy_dir, c, rl["n_actions"], rl["len_list"], rl)

    # cases ----------------------------------------------------------------------------------------
    index_cases = []
    first = True
    for bp in BEHAVIOR_POLICIES:
        for c in CAMPAIGNS:
            log = logs[(bp, c)]
            n_actions, len_list, n = log["n_actions"], log["len_list"], log["n_rounds"]
            action = np.array(log["action"], dtype=np.int64)
            position = np.array(log["position"], dtype=np.int64)
            reward = np.array(log["reward"], dtype=np.int64)
            pscore = np.array(log["pscore"], dtype=np.float64)
            q, unobserved = reward_model(log, n_actions)

            # obp's own loader, for the cross-check (pandas parsing, timestamp sort)
            ds = OpenBanditDataset(behavior_policy=bp, campaign=c, data_path=obd)
            obp_bf = ds.obtain_batch_bandit_feedback()
            order = ds.data.index.values  # file row of each obp row
            same_order = bool((order == np.arange(n)).all())
            loader_check = {
                "row_order_same_as_file": same_order,
                "rows_reordered": int((order != np.arange(n)).sum()),
                "n_actions_obp": int(ds.n_actions),
                "len_list_obp": int(ds.len_list),
                "action_equal": bool((obp_bf["action"] == action[order]).all()),
                "position_equal": bool((obp_bf["position"] == position[order]).all()),
                "reward_equal": bool((obp_bf["reward"] == reward[order]).all()),
                "pscore_bitwise_mismatches": int((obp_bf["pscore"] != pscore[order]).sum()),
                "pscore_max_abs_diff": float(np.max(np.abs(obp_bf["pscore"] - pscore[order]))),
            }
            if not (loader_check["action_equal"] and loader_check["position_equal"] and loader_check["reward_equal"]):
                raise AssertionError(f"{bp}/{c}: my CSV reading disagrees with OpenBanditDataset: {loader_check}")

            for kind in POLICY_KINDS:
                ppath = policy_files[c][kind]
                pi = read_policy(ppath, n_actions, len_list)
                bf, action_dist, est_rewards = obp_inputs(action, position, reward, pscore, n_actions, pi, q)

                meta = obp_point_estimates(bf, action_dist, est_rewards)
                direct, intervals, rr = {}, {}, {}
                for name, est in zip(ESTIMATORS, make_estimators()):
                    assert est.estimator_name == name
                    kw = dict(reward=reward, action=action, position=position, pscore=pscore,
                              action_dist=action_dist, estimated_rewards_by_reg_model=est_rewards)
                    direct[name] = float(est.estimate_policy_value(**kw))
                    intervals[name] = interval_dict(est.estimate_interval(
                        **kw, alpha=ALPHA, n_bootstrap_samples=N_BOOTSTRAP, random_state=RANDOM_STATE))
                    rr[name] = round_rewards(est, bf, action_dist, est_rewards)
                    if direct[name] != meta[name]:
                        raise AssertionError(f"{bp}/{c}/{kind}/{name}: direct {direct[name]!r} != meta {meta[name]!r}")

                plain = plain_estimates(log, pi, q)
                plain_diff = max(abs(plain[k] - meta[k]) for k in ESTIMATORS)
                if plain_diff > SELF_CHECK_TOLERANCE:
                    raise AssertionError(f"{bp}/{c}/{kind}: plain formulas differ from obp by {plain_diff}")

                # the same estimates on obp's loader output (pandas floats, timestamp-sorted rows)
                obp_bf2, ad2, er2 = obp_inputs(obp_bf["action"], obp_bf["position"], obp_bf["reward"],
                                               obp_bf["pscore"], n_actions, pi, q)
                via_loader = obp_point_estimates(obp_bf2, ad2, er2)
                loader_diff = max(abs(via_loader[k] - meta[k]) for k in ESTIMATORS)
                if loader_diff > SELF_CHECK_TOLERANCE:
                    raise AssertionError(f"{bp}/{c}/{kind}: OpenBanditDataset path differs by {loader_diff}")
                case_loader = dict(loader_check, max_abs_diff_point_estimates=loader_diff)
                if not same_order:
                    # bootstrap resamples row indices, so a different row order gives different intervals
                    case_loader["intervals_in_obp_row_order"] = {
                        name: interval_dict(est.estimate_interval(
                            reward=obp_bf2["reward"], action=obp_bf2["action"], position=obp_bf2["position"],
                            pscore=obp_bf2["pscore"], action_dist=ad2, estimated_rewards_by_reg_model=er2,
                            alpha=ALPHA, n_bootstrap_samples=N_BOOTSTRAP, random_state=RANDOM_STATE))
                        for name, est in zip(ESTIMATORS, make_estimators())
                    }

                boot_check = None
                if args.verify_bootstrap == "all" or (args.verify_bootstrap == "first" and first):
                    diffs = []
                    for name in ESTIMATORS:
                        mine = bootstrap_reimplementation(rr[name], RANDOM_STATE, N_BOOTSTRAP, ALPHA)
                        diffs += [abs(mine[k] - intervals[name][k]) for k in ("mean", "lower", "upper")]
                    boot_check = {"max_abs_diff_vs_obp": max(diffs)}
                    if max(diffs) > SELF_CHECK_TOLERANCE:
                        raise AssertionError(f"{bp}/{c}/{kind}: bootstrap recipe differs by {max(diffs)}")
                first = False

                w = np.array([pi[a][p] for a, p in zip(log["action"], log["position"])]) / pscore
                record = {
                    "schema": "lusso-obp-golden/1",
                    "log": log["path"].relative_to(args.data_root).as_posix(),
                    "log_sha256": sha256(log["path"]),
                    "behavior_policy": bp,
                    "campaign": c,
                    "policy": ppath.name,
                    "policy_sha256": sha256(ppath),
                    "n_rounds": n,
                    "n_actions": n_actions,
                    "len_list": len_list,
                    "rows_skipped": 0,
                    "position_values_in_file": log["position_values_in_file"],
                    "position_mapping": "position_0based = int(position) - 1 (== obp's rankdata(position,'dense') - 1)",
                    "n_clicks": int(reward.sum()),
                    "on_policy_mean_click": float(reward.mean()),
                    "reward_model": "q_hat(a,p) = mean click of rows with item_id=a and 0-based position=p in this log; 0.0 if no such row",
                    "reward_model_unobserved_pairs": unobserved,
                    "estimates": meta,
                    "estimates_direct": direct,
                    "tolerance": POINT_TOLERANCE,
                    "intervals": intervals,
                    "interval_params": {
                        "alpha": ALPHA,
                        "n_bootstrap_samples": N_BOOTSTRAP,
                        "random_state": RANDOM_STATE,
                        "row_order": "file order (as read by the csv module)",
                    },
                    "diagnostics": {
                        "sum_importance_weight": float(w.sum()),
                        "mean_importance_weight": float(w.mean()),
                        "max_importance_weight": float(w.max()),
                        "sum_importance_weight_times_click": float((w * reward).sum()),
                        "plain_python_max_abs_diff": plain_diff,
                    },
                    "cross_check_openbanditdataset": case_loader,
                    "bootstrap_reimplementation_check": boot_check,
                    "versions": versions,
                }
                name = f"{bp}_{c}__{ppath.stem}.json"
                with open(golden_dir / name, "w", encoding="utf-8") as f:
                    json.dump(record, f, indent=2)
                    f.write("\n")
                index_cases.append({
                    "file": name,
                    "log": record["log"],
                    "policy": record["policy"],
                    "estimates": meta,
                })
                print(f"{name}: " + " ".join(f"{k}={meta[k]:.6g}" for k in ESTIMATORS), flush=True)

    index = {
        "schema": "lusso-obp-golden-index/1",
        "generated_by": "tools/obp/make_golden.py via tools/obp/make_golden.sh",
        "data_root": "paths under `log` are relative to the shared data directory (/work/shared/data)",
        "versions": versions,
        "estimators": {
            "ipw": "obp.ope.InverseProbabilityWeighting() (lambda_=inf, no clipping)",
            "snipw": "obp.ope.SelfNormalizedInverseProbabilityWeighting()",
            "dm": "obp.ope.DirectMethod()",
            "dr": "obp.ope.DoublyRobust() (lambda_=inf, no clipping)",
        },
        "tolerance": POINT_TOLERANCE,
        "interval_params": {"alpha": ALPHA, "n_bootstrap_samples": N_BOOTSTRAP, "random_state": RANDOM_STATE},
        "greedy_best_item_per_position": {c: greedy_best[c] for c in CAMPAIGNS},
        "mt19937_test_vector": {
            "seed": RANDOM_STATE,
            "first_genrand_int32": [int(x) for x in _first_raw(RANDOM_STATE, 5)],
            "first_bootstrap_indices_n10000": [int(x) for x in np.random.RandomState(RANDOM_STATE).randint(0, 10000, size=10)],
        },
        "cases": index_cases,
    }
    with open(golden_dir / "index.json", "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    print(f"wrote {len(index_cases)} golden files and index.json to {golden_dir}")
    return 0


def _first_raw(seed: int, k: int):
    bg = np.random.MT19937()
    bg._legacy_seeding(seed)
    return bg.random_raw(k)


if __name__ == "__main__":
    sys.exit(main())
