"""The CSV download's rows (chalicelib.domain.result_csv): one per item, every kind of answer
in one cell, read back by any CSV reader as written, and no cell a spreadsheet runs."""
from __future__ import annotations

import csv
import io
import json

from chalicelib.domain import result_csv


def _table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_each_kind_of_result_is_one_row_of_plain_cells():
    lines = [
        {"item_id": "000000", "external_id": "r-1", "answer": {"label": "positive"},
         "confidence": 0.9857, "confidence_raw": 0.9991, "n_answers": 3,
         "not_applicable": False, "method": "DawidSkene", "probabilities": {"positive": 0.985741, "négatif": 0.014259}, "answers": []},
        {"item_id": "000001", "external_id": None, "answer": {"text": "a, b\n\"c\""},
         "confidence": 0.5, "n_answers": 2, "not_applicable": False, "method": "rover"},
        {"item_id": "000002", "answer": {"value": -7}, "confidence": 1.0, "n_answers": 1,
         "not_applicable": False, "method": "median"},
        {"item_id": "000003", "answer": None, "confidence": None, "n_answers": 2,
         "not_applicable": True, "na_reasons": ["off topic"], "method": "DawidSkene"},
        {"item_id": "000004", "answer": {"box": [1, 2]}, "confidence": 0.7, "n_answers": 1,
         "not_applicable": False, "method": "x"},
    ]
    table = _table(result_csv.rows(lines, with_header=True))
    assert table == [
        list(result_csv.COLUMNS),
        ["000000", "r-1", "positive", "0.9857", "3", "false", "DawidSkene",
         '{"positive":0.985741,"négatif":0.014259}', "0.9991"],
        # a line without confidence_raw (written before it existed): the confidence
        ["000001", "", "a, b\n\"c\"", "0.5", "2", "false", "rover", "", "0.5"],
        ["000002", "", "-7", "1.0", "1", "false", "median", "", "1.0"],
        ["000003", "", "", "", "2", "true", "DawidSkene", "", ""],
        ["000004", "", '{"box":[1,2]}', "0.7", "1", "false", "x", "", "0.7"],
    ]
    assert json.loads(table[1][7])["négatif"] == 0.014259
    # a part (no header) is the header's continuation: header + parts = the whole file
    assert result_csv.header() + result_csv.rows(lines) == \
        result_csv.rows(lines, with_header=True)


def test_text_that_a_spreadsheet_would_run_as_a_formula_is_kept_as_text():
    lines = [{"item_id": f"{n:06d}", "external_id": start + "SUM(A1)",
              "answer": {"text": start + "1+1"}, "confidence": 1.0, "n_answers": 1,
              "not_applicable": False, "method": "rover"}
             for n, start in enumerate("=+-@\t\r")]
    for row in _table(result_csv.rows(lines)):
        assert row[1].startswith("'") and row[2].startswith("'")
    # numbers stay numbers, and ordinary text is left as it is
    plain = {"item_id": "000009", "external_id": "ok", "answer": {"text": "1 + 1 = 2"},
             "confidence": -0.0, "n_answers": 1, "not_applicable": False, "method": "rover"}
    assert _table(result_csv.rows([plain]))[0][1:4] == ["ok", "1 + 1 = 2", "-0.0"]
