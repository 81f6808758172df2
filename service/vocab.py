"""The service's one vocabulary: splits, sort orders, export kinds, review actions and attribution
methods, declared once. The SQL (`order_by_sql`), the numpy sort keys (`ORDERS`) and the API's
`Literal` types are derived from these tuples, never retyped.
"""

from typing import Literal

SPLITS = ("easy", "intermediate", "hard")  # scoring.phases' difficulty splits, easiest first
Split = Literal["easy", "intermediate", "hard"]

ORDERS: dict[str, bool] = {  # order -> descending; ties by example_id ascending
    "example_id": False,
    "mislabel_score": True,  # high = suspect: worst first
    "accessibility": False,  # low = hard: hardest first
    "consistency": False,
}
Order = Literal["example_id", "mislabel_score", "accessibility", "consistency"]

EXPORT_KINDS = ("scores", *SPLITS, "mislabeled")  # what `export` writes: every row, one split, or the flags
ExportKind = Literal["scores", "easy", "intermediate", "hard", "mislabeled"]
EXPORT_FORMATS = ("csv", "parquet", "jsonl")
ExportFormat = Literal["csv", "parquet", "jsonl"]

ACTIONS = ("relabel", "keep", "exclude", "clear")  # review decisions; clear undoes the current one
DECIDED = ("relabel", "keep", "exclude")  # what a current decision can be (clear = none)
Action = Literal["relabel", "keep", "exclude", "clear"]
Decided = Literal["relabel", "keep", "exclude"]

# models.attribution.METHODS, repeated so that the service stays torch-free (a test keeps them equal)
ATTRIBUTION_METHODS = ("bias", "bias_uniform", "bias_signed", "gradient_x_input", "integrated_gradients_5",
                       "integrated_gradients_10", "full")
AttributionMethod = Literal["bias", "bias_uniform", "bias_signed", "gradient_x_input", "integrated_gradients_5",
                            "integrated_gradients_10", "full"]
ATTRIBUTION_TARGETS = ("given", "suggested")  # the label an attribution explains
AttributionTarget = Literal["given", "suggested"]
DEFAULT_METHODS = ("bias", "gradient_x_input")  # computed for flagged and hard examples after every job


def low_noise_pass_text(info: dict) -> str:
    """One sentence on what a job's low-noise pass did (TrainSpec.low_noise_jumpout), from its summary's
    `low_noise_pass` entry: said the same by the CLI and the dashboard."""
    sigma, p_min, p_max = info["jumpout"]
    first, second = info["first_pass_estimated_n_errors"], info["second_pass_estimated_n_errors"]
    epochs = f", {info['n_members']} members x {info['n_epochs']} epochs" if "n_epochs" in info else ""
    return (f"low-noise pass: the first pass estimated {first} errors, so the ensemble trained again under weaker "
            f"Jumpout (sigma {sigma:g}, p {p_min:g}-{p_max:g}){epochs}; the flags are that pass's, the count the "
            f"mean of both ({first} and {second})")


def order_by_sql(order: str, alias: str = "s") -> str:
    """ORDER BY text of one order: its column, its direction, ties by example_id."""
    if order == "example_id":
        return f"{alias}.example_id"
    return f"{alias}.{order}{' DESC' if ORDERS[order] else ''}, {alias}.example_id"
