#!/usr/bin/env python3
"""Reference run of Lusso's implicit-feedback comparison protocol with implicit 0.7.3.

The same protocol is implemented by `lusso eval` (Rust); this script is the
external baseline that `benches/compare_implicit.sh` runs in the same session.
See benches/implicit/README.md for the protocol in prose.

    protocol.py online-retail PATH --algo als|bpr|pop [--seeds 1,2,3,4,5] [--threads 2]
                [--write-split DIR] [--json] [hyperparameter flags]
    protocol.py split --train CSV --test CSV --algo ... (same flags)
    protocol.py synth --scale 10 --out DIR [--seed 7]

Hyperparameter flags (defaults): --factors 64, --iterations (ALS 15, BPR 100),
--regularization (ALS 0.05, BPR 0.01), --alpha 10 (ALS), --learning-rate 0.05 (BPR).
"""

import os

# Before numpy is imported: one BLAS/OpenMP thread per process. implicit's own
# native loops take their thread count from `num_threads` (--threads) instead.
for _var in (
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import gzip  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

K = 10
TEST_START = "2011-11-09 00:00:00"
STOCK_CODE = re.compile(r"[0-9]{5}[A-Za-z]?")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")

# sha256 of the split CSVs (header `user,item,weight`, LF, sorted in index order).
TRAIN_SHA256 = "23e2d5c4d4b92147afc2344d446c4303e3f4848a8e8a042d7c6198ba87449f6f"
TEST_SHA256 = "9b06ba3f54a2fcf35e822fa1ac0c6dc8fe4b8b8a005f05b330cbc8be4f3f32e5"
EXPECTED_ROWS = 396_079
EXPECTED_TRAIN_ROWS = 230_535
EXPECTED_TEST_USERS = 1_287
EXPECTED_TEST_PAIRS = 26_450

METRICS = ("precision_at_10", "recall_at_10", "map_at_10", "ndcg_at_10", "coverage")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- split


class Split:
    """A train matrix in index order plus per-user ground truth.

    user_ids / item_ids: labels (str) in index order.
    train: user x item CSR (float32) with the raw weights.
    truth: {user index: set of item indices}, only for test users.
    """

    def __init__(self, user_ids, item_ids, train, truth):
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.train = train
        self.truth = truth
        self.test_users = np.array(sorted(truth), dtype=np.int32)
        self.test_pairs = sum(len(t) for t in truth.values())


def csv_bytes(rows):
    """`user,item,weight` CSV, LF line endings, rows already in index order."""
    out = io.StringIO()
    out.write("user,item,weight\n")
    for user, item, weight in rows:
        out.write(f"{user},{item},{weight}\n")
    return out.getvalue().encode("utf-8")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def build_csr(pairs, n_users, n_items):
    """pairs: {(user index, item index): weight} -> float32 CSR (sorted indices)."""
    keys = sorted(pairs)
    rows = np.fromiter((k[0] for k in keys), dtype=np.int32, count=len(keys))
    cols = np.fromiter((k[1] for k in keys), dtype=np.int32, count=len(keys))
    vals = np.fromiter((pairs[k] for k in keys), dtype=np.float32, count=len(keys))
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items), dtype=np.float32)
    m.sort_indices()
    return m


def load_online_retail(path):
    """Steps 1-5 of the protocol. Returns (Split, train CSV bytes, test CSV bytes)."""
    train_inv = {}  # (user, item) -> set of InvoiceNo
    test_inv = {}
    kept = 0
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        for name in ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "CustomerID"):
            if name not in col:
                raise SystemExit(f"{path}: no {name} column in header {header}")
        i_inv, i_code = col["InvoiceNo"], col["StockCode"]
        i_qty, i_date, i_cust = col["Quantity"], col["InvoiceDate"], col["CustomerID"]
        for row in reader:
            customer = row[i_cust]
            if customer == "":
                continue
            if int(row[i_qty]) <= 0:
                continue
            invoice = row[i_inv]
            if invoice.startswith("C"):
                continue
            code = row[i_code]
            if not STOCK_CODE.fullmatch(code):
                continue
            date = row[i_date]
            if not DATE.fullmatch(date):
                raise SystemExit(f"{path}: unexpected InvoiceDate {date!r}")
            user = int(float(customer))  # "17850.0" -> 17850
            if float(user) != float(customer):
                raise SystemExit(f"{path}: non-integer CustomerID {customer!r}")
            item = code[:5] + code[5:].upper()
            target = test_inv if date >= TEST_START else train_inv
            target.setdefault((user, item), set()).add(invoice)
            kept += 1
    if kept != EXPECTED_ROWS:
        raise SystemExit(f"kept {kept} rows after filtering, expected {EXPECTED_ROWS}")

    users = sorted({u for u, _ in train_inv})
    items = sorted({i for _, i in train_inv}, key=lambda s: s.encode("utf-8"))
    uidx = {u: n for n, u in enumerate(users)}
    iidx = {i: n for n, i in enumerate(items)}

    train_pairs = {(uidx[u], iidx[i]): len(inv) for (u, i), inv in train_inv.items()}
    train = build_csr(train_pairs, len(users), len(items))

    truth = {}
    test_pairs = {}
    for (u, i), inv in test_inv.items():
        if u not in uidx or i not in iidx:
            continue
        key = (uidx[u], iidx[i])
        if key in train_pairs:
            continue
        truth.setdefault(key[0], set()).add(key[1])
        test_pairs[key] = len(inv)

    train_csv = csv_bytes((users[u], items[i], train_pairs[(u, i)]) for u, i in sorted(train_pairs))
    test_csv = csv_bytes((users[u], items[i], test_pairs[(u, i)]) for u, i in sorted(test_pairs))
    split = Split([str(u) for u in users], items, train, truth)
    return split, train_csv, test_csv


def read_split_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        if [h.strip() for h in header[:3]] != ["user", "item", "weight"]:
            raise SystemExit(f"{path}: header must be user,item,weight, got {header}")
        return [(r[0], r[1], float(r[2])) for r in reader if r]


def user_sort_key(labels):
    """Users ascending by integer id when every label is an integer, else by bytes."""
    try:
        for u in labels:
            int(u)
        return lambda s: (int(s), s.encode("utf-8"))
    except ValueError:
        return lambda s: s.encode("utf-8")


def load_split(train_path, test_path):
    """A given train/test CSV pair. Test users = train users with test rows for
    train items that are not among their own train items."""
    train_rows = read_split_csv(train_path)
    test_rows = read_split_csv(test_path)
    user_labels = {u for u, _, _ in train_rows}
    users = sorted(user_labels, key=user_sort_key(user_labels))
    items = sorted({i for _, i, _ in train_rows}, key=lambda s: s.encode("utf-8"))
    uidx = {u: n for n, u in enumerate(users)}
    iidx = {i: n for n, i in enumerate(items)}
    pairs = {}
    for u, i, w in train_rows:
        key = (uidx[u], iidx[i])
        if key in pairs:
            raise SystemExit(f"{train_path}: duplicate row for user {u} item {i}")
        pairs[key] = w
    train = build_csr(pairs, len(users), len(items))
    truth = {}
    ignored = 0
    for u, i, _ in test_rows:
        if u not in uidx or i not in iidx:
            ignored += 1
            continue
        key = (uidx[u], iidx[i])
        if key in pairs:
            ignored += 1
            continue
        truth.setdefault(key[0], set()).add(key[1])
    if ignored:
        log(f"split: ignored {ignored} test rows (unknown user/item or already in train)")
    return Split(users, items, train, truth)


# --------------------------------------------------------------------------- models


def fit_and_recommend(algo, params, split, seed, threads):
    """Returns (top-10 item indices per test user, fit wall seconds)."""
    user_items = split.train
    userids = split.test_users
    if algo == "pop":
        start = time.perf_counter()
        users_per_item = np.diff(user_items.tocsc().indptr)
        n_items = user_items.shape[1]
        order = np.lexsort((np.arange(n_items), -users_per_item))  # count desc, index asc
        seconds = time.perf_counter() - start
        recs = np.full((len(userids), K), -1, dtype=np.int64)
        for row, u in enumerate(userids):
            own = set(user_items.indices[user_items.indptr[u] : user_items.indptr[u + 1]].tolist())
            n = 0
            for item in order:
                if item not in own:
                    recs[row, n] = item
                    n += 1
                    if n == K:
                        break
        return recs, seconds

    if algo == "als":
        from implicit.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(
            factors=params["factors"],
            regularization=params["regularization"],
            alpha=params["alpha"],
            iterations=params["iterations"],
            use_cg=True,
            num_threads=threads,
            random_state=seed,
            calculate_training_loss=False,
            use_gpu=False,
        )
    elif algo == "bpr":
        from implicit.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(
            factors=params["factors"],
            learning_rate=params["learning_rate"],
            regularization=params["regularization"],
            iterations=params["iterations"],
            num_threads=threads,
            random_state=seed,
            use_gpu=False,
        )
    else:
        raise SystemExit(f"unknown algo {algo}")

    start = time.perf_counter()
    model.fit(user_items, show_progress=False)
    seconds = time.perf_counter() - start
    ids, _scores = model.recommend(
        userids, user_items[userids], N=K, filter_already_liked_items=True
    )
    return np.asarray(ids), seconds


# --------------------------------------------------------------------------- metrics


def evaluate(recs, split):
    """The protocol's metrics at K=10 over the split's test users."""
    idcg_table = np.cumsum([1.0 / math.log2(i + 1) for i in range(1, K + 1)])
    hits_total = 0
    ideal_total = 0
    recall_sum = ap_sum = ndcg_sum = 0.0
    recommended = set()
    for row, u in enumerate(split.test_users):
        truth = split.truth[int(u)]
        m_u = min(K, len(truth))
        hits = 0
        ap = dcg = 0.0
        for pos, item in enumerate(recs[row][:K], start=1):
            item = int(item)
            if item < 0:
                continue
            recommended.add(item)
            if item in truth:
                hits += 1
                ap += hits / pos
                dcg += 1.0 / math.log2(pos + 1)
        hits_total += hits
        ideal_total += m_u
        recall_sum += hits / len(truth)
        ap_sum += ap / m_u
        ndcg_sum += dcg / idcg_table[m_u - 1]
    n = len(split.test_users)
    return {
        "precision_at_10": hits_total / ideal_total,
        "recall_at_10": recall_sum / n,
        "map_at_10": ap_sum / n,
        "ndcg_at_10": ndcg_sum / n,
        "coverage": len(recommended) / split.train.shape[1],
    }


# --------------------------------------------------------------------------- runs


def resolve_params(args):
    if args.algo == "als":
        return {
            "factors": args.factors,
            "regularization": 0.05 if args.regularization is None else args.regularization,
            "iterations": 15 if args.iterations is None else args.iterations,
            "alpha": args.alpha,
        }
    if args.algo == "bpr":
        return {
            "factors": args.factors,
            "learning_rate": args.learning_rate,
            "regularization": 0.01 if args.regularization is None else args.regularization,
            "iterations": 100 if args.iterations is None else args.iterations,
        }
    return {"iterations": 1}


def run(split, args):
    import implicit

    params = resolve_params(args)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    log(
        f"{args.algo}: {split.train.shape[0]} users x {split.train.shape[1]} items, "
        f"{split.train.nnz} train entries; {len(split.test_users)} test users, "
        f"{split.test_pairs} test pairs; params {params}"
    )
    per_seed = []
    for seed in seeds:
        recs, seconds = fit_and_recommend(args.algo, params, split, seed, args.threads)
        metrics = evaluate(recs, split)
        spi = seconds / params["iterations"]
        per_seed.append({"seed": seed, **metrics, "seconds_per_iteration": spi})
        log(
            f"  seed {seed}: fit {seconds:.2f}s ({spi:.4f} s/iter) "
            + " ".join(f"{k}={metrics[k]:.4f}" for k in METRICS)
        )
    return {
        "algo": args.algo,
        "params": {**params, "threads": args.threads},
        "seeds": seeds,
        "per_seed": per_seed,
        "mean": {k: statistics.fmean(r[k] for r in per_seed) for k in METRICS},
        "seconds_per_iteration": statistics.median(r["seconds_per_iteration"] for r in per_seed),
        "implicit_version": implicit.__version__,
        "test_users": int(len(split.test_users)),
        "test_pairs": int(split.test_pairs),
        "train": {
            "users": int(split.train.shape[0]),
            "items": int(split.train.shape[1]),
            "entries": int(split.train.nnz),
        },
    }


def report(result, as_json):
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print(f"implicit {result['implicit_version']}  algo {result['algo']}  params {result['params']}")
    print(f"test users {result['test_users']}, test pairs {result['test_pairs']}")
    print("seed  " + "  ".join(f"{k:>15}" for k in METRICS) + "  s/iteration")
    for r in result["per_seed"]:
        print(
            f"{r['seed']:>4}  "
            + "  ".join(f"{r[k]:>15.4f}" for k in METRICS)
            + f"  {r['seconds_per_iteration']:.4f}"
        )
    print(
        "mean  "
        + "  ".join(f"{result['mean'][k]:>15.4f}" for k in METRICS)
        + f"  {result['seconds_per_iteration']:.4f} (median)"
    )


def cmd_online_retail(args):
    split, train_csv, test_csv = load_online_retail(args.path)
    train_hash, test_hash = sha256(train_csv), sha256(test_csv)
    checks = [
        ("train.csv sha256", train_hash, TRAIN_SHA256),
        ("test.csv sha256", test_hash, TEST_SHA256),
        ("train rows", split.train.nnz, EXPECTED_TRAIN_ROWS),
        ("test users", len(split.test_users), EXPECTED_TEST_USERS),
        ("test pairs", split.test_pairs, EXPECTED_TEST_PAIRS),
    ]
    for name, got, want in checks:
        if got != want:
            raise SystemExit(f"split check failed: {name} = {got}, expected {want}")
    log(f"split verified: train {train_hash} test {test_hash}")
    if args.write_split:
        os.makedirs(args.write_split, exist_ok=True)
        with open(os.path.join(args.write_split, "train.csv"), "wb") as f:
            f.write(train_csv)
        with open(os.path.join(args.write_split, "test.csv"), "wb") as f:
            f.write(test_csv)
        log(f"split written to {args.write_split}/train.csv and test.csv")
    result = run(split, args)
    result["split_sha256"] = {"train": train_hash, "test": test_hash}
    report(result, args.json)


def cmd_split(args):
    split = load_split(args.train, args.test)
    if len(split.test_users) == 0:
        raise SystemExit("split: no test users")
    report(run(split, args), args.json)


# --------------------------------------------------------------------------- synthetic data

# Online Retail train matrix (the protocol's split: 4,063 users x 3,617 items,
# 230,535 entries): the synthetic data scales users and entries by --scale and
# keeps the item count.
BASE_USERS = 4_063
BASE_ITEMS = 3_617
BASE_TRAIN_ENTRIES = EXPECTED_TRAIN_ROWS
SYNTH_TOPICS = 40
SYNTH_TOPIC_SHARE = 0.75  # share of draws from the user's topics, rest from global popularity
SYNTH_ZIPF = 0.9  # item popularity ~ rank^-0.9
SYNTH_TEST_USER_SHARE = 0.3
SYNTH_HOLDOUT = 0.2


def synthesize(scale, seed):
    """Deterministic (for a seed and NumPy's Generator stream) synthetic purchases.

    Returns (train rows, test rows) as (user label, item label, weight), sorted in index
    order. Labels are fixed-width (users 6 digits from 100000, items 5 digits from 10000),
    so integer order and byte order agree.
    """
    rng = np.random.default_rng(seed)
    n_users = int(round(BASE_USERS * scale))
    n_items = BASE_ITEMS
    # Item popularity: Zipf over a random permutation of the items; each item has one topic.
    popularity = np.empty(n_items)
    popularity[rng.permutation(n_items)] = (np.arange(n_items) + 1.0) ** -SYNTH_ZIPF
    topic_of = rng.integers(0, SYNTH_TOPICS, size=n_items)
    # Per-user activity (draws), heavy-tailed: lognormal, at least 3.
    # Mean draws chosen so that, after de-duplication and the test hold-out, the train
    # matrix has about scale x BASE_TRAIN_ENTRIES entries.
    target_draws = BASE_TRAIN_ENTRIES * scale * 1.52
    raw = rng.lognormal(mean=0.0, sigma=1.0, size=n_users)
    draws = np.maximum(3, np.round(raw * target_draws / raw.sum())).astype(np.int64)
    # Topic mixture per user: sparse Dirichlet, so each user likes a few topics.
    theta = rng.dirichlet(np.full(SYNTH_TOPICS, 0.1), size=n_users)
    topical = rng.binomial(draws, SYNTH_TOPIC_SHARE)
    per_topic = rng.multinomial(topical, theta)  # users x topics
    users_parts, items_parts = [], []
    for t in range(SYNTH_TOPICS):
        members = np.flatnonzero(topic_of == t)
        cdf = np.cumsum(popularity[members])
        cdf /= cdf[-1]
        n = int(per_topic[:, t].sum())
        users_parts.append(np.repeat(np.arange(n_users), per_topic[:, t]))
        items_parts.append(members[np.minimum(np.searchsorted(cdf, rng.random(n)), len(members) - 1)])
    glob = draws - topical
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    users_parts.append(np.repeat(np.arange(n_users), glob))
    items_parts.append(np.minimum(np.searchsorted(cdf, rng.random(int(glob.sum()))), n_items - 1))
    keys = np.concatenate(users_parts) * n_items + np.concatenate(items_parts)
    pairs, counts = np.unique(keys, return_counts=True)  # sorted by (user, item)
    pair_user = pairs // n_items
    pair_item = pairs % n_items
    weight = np.minimum(counts, 5)
    # Hold-out: 30 % of users are test users; 20 % of their pairs go to test, never a
    # user's first pair (so every user keeps a train entry).
    is_test_user = rng.random(n_users) < SYNTH_TEST_USER_SHARE
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = pair_user[1:] != pair_user[:-1]
    held = is_test_user[pair_user] & ~first & (rng.random(len(pairs)) < SYNTH_HOLDOUT)
    train_items = np.zeros(n_items, dtype=bool)
    train_items[pair_item[~held]] = True
    held &= train_items[pair_item]  # test items must be train items
    label_u = [f"{100000 + u}" for u in range(n_users)]
    label_i = [f"{10000 + i}" for i in range(n_items)]

    def rows(mask):
        return [
            (label_u[u], label_i[i], int(w))
            for u, i, w in zip(pair_user[mask].tolist(), pair_item[mask].tolist(), weight[mask].tolist())
        ]

    return rows(~held), rows(held)


def cmd_synth(args):
    start = time.perf_counter()
    train_rows, test_rows = synthesize(args.scale, args.seed)
    os.makedirs(args.out, exist_ok=True)
    summary = {"scale": args.scale, "seed": args.seed, "numpy_version": np.__version__}
    for name, rows in (("train", train_rows), ("test", test_rows)):
        data = csv_bytes(rows)
        with open(os.path.join(args.out, f"{name}.csv"), "wb") as f:
            f.write(data)
        summary[name] = {
            "rows": len(rows),
            "users": len({r[0] for r in rows}),
            "items": len({r[1] for r in rows}),
            "sha256": sha256(data),
        }
    summary["seconds"] = round(time.perf_counter() - start, 2)
    with open(os.path.join(args.out, "synth.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(json.dumps(summary, indent=2))


# --------------------------------------------------------------------------- CLI


def add_run_flags(p):
    p.add_argument("--algo", choices=("als", "bpr", "pop"), required=True)
    p.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated seeds (default 1,2,3,4,5)")
    p.add_argument("--threads", type=int, default=2, help="implicit num_threads (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--iterations", type=int, default=None, help="default: ALS 15, BPR 100")
    p.add_argument("--regularization", type=float, default=None, help="default: ALS 0.05, BPR 0.01")
    p.add_argument("--alpha", type=float, default=10.0, help="ALS confidence scale (default 10)")
    p.add_argument("--learning-rate", type=float, default=0.05, help="BPR (default 0.05)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("online-retail", help="split UCI Online Retail, verify it, fit and evaluate")
    p.add_argument("path", help="online_retail.csv.gz")
    p.add_argument("--write-split", metavar="DIR", help="also write DIR/train.csv and DIR/test.csv")
    add_run_flags(p)
    p.set_defaults(func=cmd_online_retail)

    p = sub.add_parser("split", help="fit and evaluate on a given train/test CSV pair")
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    add_run_flags(p)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("synth", help="write a synthetic train/test CSV pair")
    p.add_argument("--scale", type=float, default=10.0, help="users and entries x Online Retail (default 10)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_synth)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
