# An offline stand-in for the Hub `sacrebleu` metric (same inputs and outputs), built on the sacrebleu package.
import datasets
import evaluate
import sacrebleu as scb

_DESCRIPTION = "Corpus BLEU (Papineni et al., 2002) computed by sacrebleu (Post, 2018); mirrors the Hub `sacrebleu` metric."
_CITATION = """@inproceedings{post-2018-call, title = "A Call for Clarity in Reporting {BLEU} Scores", author = "Post, Matt",
booktitle = "Proceedings of the Third Conference on Machine Translation", year = "2018", pages = "186--191"}"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated texts.
    references: list of lists of reference texts, the same number of references for every prediction.
    smooth_method, smooth_value, tokenize, lowercase, force, use_effective_order: as `sacrebleu.BLEU`.
Returns:
    score (0-100), counts, totals, precisions, bp, sys_len, ref_len.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Sacrebleu(evaluate.Metric):
    """Corpus-level BLEU with the Hub `sacrebleu` metric's signature."""

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
            codebase_urls=["https://github.com/mjpost/sacreBLEU"],
        )

    def _compute(
        self,
        predictions,
        references,
        smooth_method="exp",
        smooth_value=None,
        force=False,
        lowercase=False,
        tokenize=None,
        use_effective_order=False,
    ):
        # A flat list of strings means one reference per prediction.
        if references and isinstance(references[0], str):
            references = [[reference] for reference in references]
        counts = {len(refs) for refs in references}
        if len(counts) > 1:
            raise ValueError(f"sacrebleu needs the same number of references per prediction; got counts {sorted(counts)}.")
        transposed = [[refs[i] for refs in references] for i in range(counts.pop() if counts else 0)]
        bleu = scb.BLEU(
            lowercase=lowercase,
            force=force,
            smooth_method=smooth_method,
            smooth_value=smooth_value,
            effective_order=use_effective_order,
            **({"tokenize": tokenize} if tokenize is not None else {}),
        )
        output = bleu.corpus_score(predictions, transposed)
        return {
            "score": output.score,
            "counts": output.counts,
            "totals": output.totals,
            "precisions": output.precisions,
            "bp": output.bp,
            "sys_len": output.sys_len,
            "ref_len": output.ref_len,
        }
