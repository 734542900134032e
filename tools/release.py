"""Ship a trained checkpoint: copy it into the package's weights folder and write its catalog
entry (arch and kwargs from the checkpoint, sha256, training data and licenses from the corpus's
dataset.json, training facts from the run, scores from an `unweave evaluate` summary.json).

Usage: python tools/release.py NAME CHECKPOINT --corpus corpora/denoise \
           --summary reports/denoise/summary.json --run runs/denoise_spec_unet \
           --license "CC-BY-SA-3.0" --hardware "2-core CPU" [--continued]
           (--continued: a run initialised from the shipped weights; the entry's license,
           hardware and data note are kept unless given again)
       python tools/release.py NAME --rescore --summary reports/X/summary.json
           (new scores for the shipped weights, e.g. after an inference change; the rest is kept)
       python tools/release.py BAG --bag-weights reports/W/weights.json [--bag-members a,b]
           [--task T --description D --data-note TEXT --license L]
           (a bag's members and weights, as tools/bag_weights.py chose them, for a new bag with
           --task and --description; its data and license in words; then evaluate the bag and
           --rescore it)
Only measured numbers are copied; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from unweave.fileio import atomic_path, write_text_atomic
from unweave.inference.separator import DEFAULT_OVERLAP
from unweave.pretrained.catalog import CATALOG_PATH, WEIGHTS_DIR
from unweave.pretrained.checkpoint import read_checkpoint, sha256_file

# How each corpus builder holds out its validation split (unweave.data.build_*).
SPLITS = {
    "music4": "split by song, and the sung vocals' speech by speaker or dialogue group",
    "vocals": "split by song, and the sung vocals' speech by speaker or dialogue group",
    "soundtrack": "split by source (music track, speaker or dialogue group, effect file)",
    "denoise": "split by source (speaker or dialogue group, noise file)",
}


DEFAULT_SPLIT = "split by speaker/track"


def _split_sentence(task: str) -> str:
    return f"{SPLITS.get(task, DEFAULT_SPLIT)}."


def _keep_from_entry(args: argparse.Namespace, entry: dict) -> None:
    """A re-release of a continued model keeps what the run did not change, unless given again:
    the weights' license, the hardware, and the note that follows the data's split sentence."""
    args.license = args.license or entry.get("license")
    args.hardware = args.hardware or (entry.get("training") or {}).get("hardware")
    if args.data_note is None:
        data = entry.get("data", "")
        # the catalog's task ("music") is not the corpus's ("music4"): find the sentence itself
        for split in (*SPLITS.values(), DEFAULT_SPLIT):
            if f"{split}." in data:
                args.data_note = data.split(f"{split}.", 1)[1].strip()
                break


def _scores(summary: dict) -> dict:
    out = {"dataset": summary.get("dataset"), "items": summary.get("items"),
           "statistic": "median over items",
           # stems given the mixture's band above the model's (summaries before it: off)
           "band_extension": bool(summary.get("settings", {}).get("band_extension", False))}
    for source, per in summary["stems"].items():
        out[source] = {}
        for metric, entry in per.items():
            out[source][metric] = round(entry["estimate"]["median"], 3)
            out[source][f"{metric}_mixture"] = round(entry["mixture"]["median"], 3)
            if entry.get("oracle_irm", {}).get("median") is not None:
                out[source][f"{metric}_oracle_irm"] = round(entry["oracle_irm"]["median"], 3)
    return out


def _set_inference(entry: dict, summary: dict) -> None:
    """Make the settings ``summary``'s scores were measured with ``entry``'s defaults: an
    overlap left from earlier scores is dropped unless these used one of their own too."""
    entry.pop("overlap", None)
    entry.update(_inference(summary))


def _inference(summary: dict) -> dict:
    """Inference settings the scores were measured with that the catalog makes the default."""
    settings = summary.get("settings", {})
    refine = settings.get("refine", False)
    # summaries before refinement modes existed say True: that was the soft mask
    out = {"refine": "soft" if refine is True else refine or False}
    overlap = settings.get("overlap")
    if overlap is not None and overlap != DEFAULT_OVERLAP:  # scored with its own chunk overlap
        out["overlap"] = overlap
    return out


def _rounded(metrics: dict) -> dict:
    return {k: round(v, 3) for k, v in metrics.items() if isinstance(v, float)}


def _training(run: Path, meta: dict) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    train = [r for r in rows if r.get("kind") == "train"]
    valid = [r for r in rows if r.get("kind") == "valid"]
    info = {"steps": train[-1]["step"] if train else 0, "recipe": (run / "config.yaml").name}
    if valid:
        info["final_validation"] = _rounded(valid[-1])
    # The shipped checkpoint may be an earlier (best) one: record its step, and its validation
    # when that is not the final one.
    if meta.get("step") is not None:
        info["checkpoint_step"] = meta["step"]
    if meta.get("valid") and meta.get("step") != info["steps"]:
        info["checkpoint_validation"] = _rounded(meta["valid"])
    loss = meta.get("config", {}).get("train", {}).get("loss")
    if loss:
        info["loss"] = loss
    return info


def _write(catalog: dict) -> None:
    write_text_atomic(CATALOG_PATH, json.dumps(catalog, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("checkpoint", type=Path, nargs="?")
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--summary", type=Path, help="an `unweave evaluate` summary.json")
    ap.add_argument("--run", type=Path)
    ap.add_argument("--license", help="license of the weights (with --continued: default the "
                    "shipped entry's)")
    ap.add_argument("--hardware", help="(with --continued: default the shipped entry's)")
    ap.add_argument("--wall-minutes", type=float, default=None)
    ap.add_argument("--data-note", default=None,
                    help="text after the data's split sentence (with --continued: default the "
                         "shipped entry's note)")
    ap.add_argument("--continued", action="store_true",
                    help="the run was initialised from the shipped weights (model.init): keep the "
                         "earlier training record under training.continued_from")
    ap.add_argument("--rescore", action="store_true",
                    help="only replace the scores of the shipped weights with --summary's")
    ap.add_argument("--task", help="a model new to the catalog: its task (music, vocals, ...)")
    ap.add_argument("--description", help="one line about the model (needed for a new one; "
                    "replaces an existing one's)")
    ap.add_argument("--bag-weights", type=Path, help="a bag: set its members and per-source "
                    "weights from tools/bag_weights.py's weights.json (then evaluate it and "
                    "--rescore)")
    ap.add_argument("--bag-members", help="with --bag-weights: the members' catalog names, "
                    "comma-separated, in weights.json's order (default: its member names)")
    args = ap.parse_args()
    catalog = json.loads(CATALOG_PATH.read_text())
    entry = next((e for e in catalog["models"] if e["name"] == args.name), None)
    if entry is None:
        if not (args.task and args.description) or args.rescore:
            ap.error(f"{args.name}: not in {CATALOG_PATH} (a new model needs --task and "
                     "--description)")
        entry = {"name": args.name, "task": args.task, "description": args.description}
        if args.bag_weights:  # a new bag
            entry["bag"] = {}
        catalog["models"].append(entry)
    if args.description:
        entry["description"] = args.description
    if args.bag_weights:
        if "bag" not in entry:
            ap.error(f"--bag-weights: {args.name} is not a bag")
        chosen = json.loads(args.bag_weights.read_text())
        names = args.bag_members.split(",") if args.bag_members else chosen["members"]
        if len(names) != len(chosen["weights"]):
            ap.error(f"--bag-members: {len(names)} names for {len(chosen['weights'])} rows")
        entry["bag"] = {"models": names, "weights": chosen["weights"]}
        # the weights were chosen under one refinement: the bag separates with it
        entry["refine"] = "spatial" if chosen.get("spatial") else "soft"
        # a bag's data and license are its members': said in words, not built from a corpus
        entry.update({k: v for k, v in (("data", args.data_note), ("license", args.license))
                      if v is not None})
        if args.summary is None:
            _write(catalog)
            print(f"{args.name}: bag {names} weights {chosen['weights']}; evaluate it, then "
                  "--rescore")
            return
    if args.summary is None:
        ap.error("--summary is needed")
    summary = json.loads(args.summary.read_text())
    if args.rescore:
        entry["scores"] = _scores(summary)
        _set_inference(entry, summary)
        _write(catalog)
        print(f"{args.name}: scores replaced from {args.summary}")
        return
    if args.continued:
        _keep_from_entry(args, entry)
    missing = [opt for opt, value in (("CHECKPOINT", args.checkpoint), ("--corpus", args.corpus),
                                      ("--run", args.run), ("--license", args.license),
                                      ("--hardware", args.hardware)) if value is None]
    if missing:
        ap.error("a release needs " + ", ".join(missing))

    payload = read_checkpoint(args.checkpoint)
    target = WEIGHTS_DIR / f"{args.name}.pt"
    with atomic_path(target) as tmp:  # the shipped weights are replaced whole or not at all
        shutil.copyfile(args.checkpoint, tmp)
    dataset = json.loads((args.corpus / "dataset.json").read_text())
    packages = dataset.get("packages", {})
    data = (f"{dataset['task']} corpus built by `unweave data build {dataset['task']}` from Debian "
            f"packages: " + ", ".join(f"{p} {v.get('version')} ({v.get('license')})"
                                      for p, v in packages.items())
            + f"; {dataset['minutes']['train']:.0f} min train / {dataset['minutes']['valid']:.0f} min "
            f"valid, {_split_sentence(dataset['task'])}"
            + (f" {args.data_note}" if args.data_note else ""))
    training = {**_training(args.run, payload.get("meta") or {}), "hardware": args.hardware}
    if args.wall_minutes:
        training["wall_minutes"] = args.wall_minutes
    if args.continued and entry.get("training"):
        training["continued_from"] = {**entry["training"], "sha256": entry["weights"]["sha256"]}
    entry.update({
        "arch": payload["arch"], "kwargs": payload["kwargs"],
        "weights": {"file": target.name, "sha256": sha256_file(target), "url": None},
        "data": data, "license": args.license,
        "scores": _scores(summary), "training": training,
    })
    _set_inference(entry, summary)
    _write(catalog)
    print(f"{args.name}: {target} ({target.stat().st_size / 1e6:.1f} MB) sha256 "
          f"{entry['weights']['sha256'][:12]}")


if __name__ == "__main__":
    main()
