# An offline stand-in for the Hub `rouge` metric (same inputs and outputs), built on Google's rouge-score.
import datasets
import evaluate
from rouge_score import rouge_scorer, scoring

_DESCRIPTION = "ROUGE (Lin, 2004) via the `rouge-score` package; mirrors the Hub `rouge` metric's interface."
_CITATION = """@inproceedings{lin-2004-rouge, title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
author = "Lin, Chin-Yew", booktitle = "Text Summarization Branches Out", year = "2004", pages = "74--81"}"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated texts.
    references: list of reference texts (or a list of lists: the best-scoring reference counts).
    rouge_types: which scores to return, default ["rouge1", "rouge2", "rougeL", "rougeLsum"].
    use_aggregator: True returns the bootstrap mid F-measure per type, False the per-sample F-measures.
    use_stemmer: apply the Porter stemmer before matching.
    tokenizer: an object with `tokenize(text) -> list[str]`, default rouge-score's own.
Returns:
    {rouge_type: float} when aggregated, else {rouge_type: list[float]}.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    """ROUGE-N / ROUGE-L F-measures with the Hub `rouge` metric's signature."""

    def _info(self):
        string = datasets.Value("string", id="sequence")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": string, "references": datasets.Sequence(string)}),
                datasets.Features({"predictions": string, "references": string}),
            ],
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions, references, rouge_types=None, use_aggregator=True, use_stemmer=False, tokenizer=None):
        rouge_types = rouge_types or ["rouge1", "rouge2", "rougeL", "rougeLsum"]
        scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer, tokenizer=tokenizer)
        aggregator = scoring.BootstrapAggregator() if use_aggregator else None
        per_sample = {rouge_type: [] for rouge_type in rouge_types}
        for prediction, reference in zip(predictions, references):
            if isinstance(reference, list):
                score = scorer.score_multi(reference, prediction)
            else:
                score = scorer.score(reference, prediction)
            if aggregator is not None:
                aggregator.add_scores(score)
            else:
                for rouge_type in rouge_types:
                    per_sample[rouge_type].append(score[rouge_type].fmeasure)
        if aggregator is None:
            return per_sample
        result = aggregator.aggregate()
        return {rouge_type: float(result[rouge_type].mid.fmeasure) for rouge_type in rouge_types}
