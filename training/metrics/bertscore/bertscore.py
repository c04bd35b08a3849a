# An offline stand-in for the Hub `bertscore` metric (same inputs and outputs), built on the bert-score package.
import datasets
import evaluate

_DESCRIPTION = (
    "BERTScore (Zhang et al., 2020): token-level cosine matching of contextual embeddings. `model_type` may be a "
    "local folder (a BERT-like model and tokenizer), which then needs `num_layers`; mirrors the Hub `bertscore` metric."
)
_CITATION = """@inproceedings{bert-score, title={BERTScore: Evaluating Text Generation with BERT},
author={Tianyi Zhang* and Varsha Kishore* and Felix Wu* and Kilian Q. Weinberger and Yoav Artzi},
booktitle={International Conference on Learning Representations}, year={2020}}"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated texts.
    references: list of reference texts (or lists of them: the best-scoring reference counts).
    model_type: a bert-score model name or a local model folder; lang: picks a default model when model_type is None.
    num_layers: which layer's embeddings to use (required for a model bert-score does not know, e.g. a local folder).
    idf, device, batch_size, nthreads, all_layers, rescale_with_baseline, baseline_path, use_fast_tokenizer:
    as `bert_score.score`.
Returns:
    precision, recall, f1 (one float per prediction) and hashcode.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BERTScore(evaluate.Metric):
    """BERTScore precision/recall/F1 per prediction with the Hub `bertscore` metric's signature."""

    def _info(self):
        string = datasets.Value("string", id="sequence")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": string, "references": datasets.Sequence(string, id="references")}),
                datasets.Features({"predictions": string, "references": string}),
            ],
            codebase_urls=["https://github.com/Tiiiger/bert_score"],
        )

    def _compute(
        self,
        predictions,
        references,
        lang=None,
        model_type=None,
        num_layers=None,
        verbose=False,
        idf=False,
        device=None,
        batch_size=64,
        nthreads=4,
        all_layers=False,
        rescale_with_baseline=False,
        baseline_path=None,
        use_fast_tokenizer=False,
    ):
        import bert_score  # imported lazily: it pulls in pandas and is only needed when a model is given

        if model_type is None and lang is None:
            raise ValueError("bertscore: pass model_type (a model name or a local folder) or lang.")
        if model_type is not None and num_layers is None and model_type not in bert_score.utils.model2layers:
            raise ValueError(
                f"bertscore: model_type {model_type!r} is not one bert-score knows, so num_layers must be given "
                "(e.g. the model's num_hidden_layers)."
            )
        (precision, recall, f1), hashcode = bert_score.score(
            list(predictions),
            list(references),
            model_type=model_type,
            num_layers=num_layers,
            verbose=verbose,
            idf=idf,
            device=device,
            batch_size=batch_size,
            nthreads=nthreads,
            all_layers=all_layers,
            lang=lang,
            return_hash=True,
            rescale_with_baseline=rescale_with_baseline,
            baseline_path=baseline_path,
            use_fast_tokenizer=use_fast_tokenizer,
        )
        return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(), "hashcode": hashcode}
