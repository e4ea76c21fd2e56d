"""Tidy analysis tables from validated input: scored alliance and digital-arm covariates."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from alliance.design import RATERS, log_amount
from alliance.input_data import TrialData
from alliance.scoring import WaiInstrument, communication, reverse_key, score_sus, score_wai

PATIENT_COLUMNS = ["patient_id", "centre", "arm", "therapist_id", "age"]


def alliance_table(data: TrialData, instrument: Mapping) -> pd.DataFrame:
    """One row per patient x month x rater (every combination), with scored WAI.

    Assessments absent from ``wai.csv``, or with too many missing answers, have a missing
    ``wai_total``; ``assessed`` says whether a total could be scored.
    """
    wai = WaiInstrument.from_config(instrument)
    grid = pd.MultiIndex.from_product(
        [data.patients["patient_id"], list(instrument["months"]), list(RATERS)],
        names=["patient_id", "month", "rater"],
    ).to_frame(index=False)
    scored = data.wai[["patient_id", "month", "rater"]].join(score_wai(data.wai, wai))
    table = grid.merge(scored, on=["patient_id", "month", "rater"], how="left")
    table = data.patients[PATIENT_COLUMNS].merge(table, on="patient_id", how="right")
    table["n_items_answered"] = table["n_items_answered"].fillna(0).astype(int)
    table["n_items_at_ceiling"] = table["n_items_at_ceiling"].fillna(0).astype(int)
    table["assessed"] = table["wai_total"].notna()
    columns = [*PATIENT_COLUMNS, "month", "rater", "wai_total", *wai.subscales]
    columns += ["n_items_answered", "n_items_at_ceiling", "assessed"]
    return table[columns].sort_values(["patient_id", "month", "rater"]).reset_index(drop=True)


ITEM_COLUMNS = ["patient_id", "therapist_id", "centre", "arm", "month", "rater", "item", "answer"]


def wai_items_table(data: TrialData, instrument: Mapping) -> pd.DataFrame:
    """One row per answered WAI item: the scored answer (reverse keys applied), with the
    patient's arm, therapist and centre (the item-level ordinal model's data)."""
    wai = WaiInstrument.from_config(instrument)
    scored = reverse_key(data.wai, wai)
    scored.columns = range(1, wai.n_items + 1)
    long = (
        pd.concat([data.wai[["patient_id", "month", "rater"]], scored], axis=1)
        .melt(id_vars=["patient_id", "month", "rater"], var_name="item", value_name="answer")
        .dropna(subset=["answer"])
    )
    long = long.merge(data.patients[PATIENT_COLUMNS[:4]], on="patient_id", how="left")
    long = long.astype({"month": int, "item": int, "answer": int})
    return long[ITEM_COLUMNS].sort_values(
        ["patient_id", "month", "rater", "item"], ignore_index=True
    )


def digital_covariates(digital: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """One row per digital-arm patient x assessment with the aim (c) covariates derived.

    ``comm_amount`` is messages + calls + visits, ``comm_amount_log`` its log(1 + amount), and
    ``comm_async_share`` the messages' share of the amount (missing when the amount is 0).
    """
    comm = communication(digital["n_messages"], digital["n_calls"], digital["n_visits"])
    age = dict(zip(patients["patient_id"], patients["age"], strict=True))
    table = pd.DataFrame(
        {
            "patient_id": digital["patient_id"].to_numpy(),
            "month": digital["month"].astype(int).to_numpy(),
            "age": digital["patient_id"].map(age).astype(float).to_numpy(),
            "sus": score_sus(digital).to_numpy(),
            "vas_app": digital["vas_app"].astype(float).to_numpy(),
            "vas_platform": digital["vas_platform"].astype(float).to_numpy(),
            "n_messages": digital["n_messages"].astype(float).to_numpy(),
            "n_calls": digital["n_calls"].astype(float).to_numpy(),
            "n_visits": digital["n_visits"].astype(float).to_numpy(),
            "comm_amount": comm["comm_amount"].astype(float).to_numpy(),
            "comm_async_share": comm["comm_async_share"].astype(float).to_numpy(),
        }
    )
    table["comm_amount_log"] = log_amount(table["comm_amount"])
    return table


def build_analysis_tables(data: TrialData, instrument: Mapping) -> dict[str, pd.DataFrame]:
    """The analysis tables by name: ``alliance``, ``wai_items``, ``digital_covariates``,
    ``data_dictionary``."""
    covariates = digital_covariates(data.digital, data.patients)
    return {
        "alliance": alliance_table(data, instrument),
        "wai_items": wai_items_table(data, instrument),
        "digital_covariates": covariates.sort_values(["patient_id", "month"], ignore_index=True),
        "data_dictionary": data_dictionary(),
    }


DATA_DICTIONARY = [
    ("alliance", "patient_id", "text", "Patient identifier, as in patients.csv."),
    ("alliance", "centre", "text", "Recruiting centre."),
    ("alliance", "arm", "text", "Randomised arm: digital (stepped e-health) or ptau (usual care)."),
    ("alliance", "therapist_id", "text", "Therapist responsible for the patient."),
    ("alliance", "age", "number", "Age at inclusion, years; missing allowed."),
    ("alliance", "month", "integer", "Assessment month after inclusion."),
    ("alliance", "rater", "text", "Who rated the alliance: patient or therapist."),
    (
        "alliance",
        "wai_total",
        "number",
        "WAI total: mean of the 12 scored items (1-7), reverse keys applied; pro-rated when at "
        "most max_missing_total answers are missing, else missing.",
    ),
    ("alliance", "task", "number", "WAI task subscale, mean of its scored items, pro-rated."),
    ("alliance", "goal", "number", "WAI goal subscale, mean of its scored items, pro-rated."),
    ("alliance", "bond", "number", "WAI bond subscale, mean of its scored items, pro-rated."),
    ("alliance", "n_items_answered", "integer", "Number of WAI items answered (0-12)."),
    (
        "alliance",
        "n_items_at_ceiling",
        "integer",
        "Number of scored WAI items at the top of the response scale.",
    ),
    ("alliance", "assessed", "boolean", "Whether a WAI total could be scored."),
    ("wai_items", "patient_id", "text", "Patient identifier, as in patients.csv."),
    ("wai_items", "therapist_id", "text", "Therapist responsible for the patient."),
    ("wai_items", "centre", "text", "Recruiting centre."),
    ("wai_items", "arm", "text", "Randomised arm: digital or ptau."),
    ("wai_items", "month", "integer", "Assessment month after inclusion."),
    ("wai_items", "rater", "text", "Who rated the alliance: patient or therapist."),
    ("wai_items", "item", "integer", "WAI item number (1-12)."),
    (
        "wai_items",
        "answer",
        "integer",
        "Scored answer (1-7), reverse keys applied; one row per answered item only.",
    ),
    ("digital_covariates", "patient_id", "text", "Patient identifier (digital arm only)."),
    ("digital_covariates", "month", "integer", "Assessment month after inclusion."),
    ("digital_covariates", "age", "number", "Age at inclusion, years."),
    (
        "digital_covariates",
        "sus",
        "number",
        "System Usability Scale score of the app, 0-100; missing when any item is missing.",
    ),
    ("digital_covariates", "vas_app", "number", "Patient's satisfaction with the app, 0-10."),
    (
        "digital_covariates",
        "vas_platform",
        "number",
        "Therapist's satisfaction with the monitoring platform for this patient, 0-10.",
    ),
    ("digital_covariates", "n_messages", "integer", "Asynchronous text messages in the period."),
    ("digital_covariates", "n_calls", "integer", "Phone or video calls in the period."),
    ("digital_covariates", "n_visits", "integer", "Face-to-face contacts in the period."),
    (
        "digital_covariates",
        "comm_amount",
        "number",
        "Communication amount: messages + calls + visits.",
    ),
    (
        "digital_covariates",
        "comm_async_share",
        "number",
        "Communication type: share of asynchronous messages in the amount (missing when 0).",
    ),
    (
        "digital_covariates",
        "comm_amount_log",
        "number",
        "log(1 + comm_amount), the scale on which the amount enters the association models.",
    ),
]


def data_dictionary() -> pd.DataFrame:
    """The columns of the analysis tables, with type and meaning."""
    return pd.DataFrame(DATA_DICTIONARY, columns=["table", "column", "type", "description"])
