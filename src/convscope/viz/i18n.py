"""The words the pictures draw, in English and Korean (one table, so SVGs and the report agree).

Korean follows `convscope.explain`'s terms: 층 (layer), 필터, 채널, 특성 맵, 수용 영역.
Layer names, class names and activation names are identifiers and stay as they are.
"""

from __future__ import annotations

from typing import Dict

LANGS = ("en", "ko")

LABELS: Dict[str, Dict[str, str]] = {
    "en": {
        "epoch": "epoch", "train": "train", "validation": "validation", "final": "final",
        "input_shape": "Input shape", "output_shape": "Output shape", "activation": "Activation",
        "trainable": "Trainable", "dtype": "dtype", "yes": "Y", "no": "N",
        "loss": "loss", "accuracy": "accuracy (%)", "percent": "%",
        "one_epoch": "one epoch: values after it",
        "kernels_title": "{name} ({cls}): {per} × {filters} = {count:,} kernels of {kh}×{kw}",
        "kernels_sub": ("rows: input channels per group ({rows} of {per} shown), "
                        "columns: filters ({cols} of {filters} shown)"),
        "filter_col": "f{col}", "input_row": "in {row}", "kernel_tile": "input channel {row}, filter {col}",
        "weight": "weight", "activation_value": "activation", "pixel": "pixel", "input_image": "input image",
        "maps_title": "{label}: {h}×{w}×{channels}", "maps_shown": " ({shown} of {channels} channels shown)",
        "map_tile": "{label}, channel {channel}",
        "predicted": "prediction: class {cls} ({p:.1f}%)", "from_logits": " — softmax of the logits",
        "scale_seq": "scale from 0 (data ≥ 0)", "scale_div": "scale around 0",
        "call": "{cls}, call {call} of {calls}",
    },
    "ko": {
        "epoch": "에폭", "train": "학습", "validation": "검증", "final": "최종",
        "input_shape": "입력 형태", "output_shape": "출력 형태", "activation": "활성화 함수",
        "trainable": "학습 가능", "dtype": "자료형", "yes": "예", "no": "아니요",
        "loss": "손실", "accuracy": "정확도 (%)", "percent": "%",
        "one_epoch": "에폭 1회: 그 뒤의 값",
        "kernels_title": "{name} ({cls}): {per} × {filters} = 커널 {count:,}개 ({kh}×{kw})",
        "kernels_sub": "행: 그룹당 입력 채널 ({per}개 중 {rows}개 표시), 열: 필터 ({filters}개 중 {cols}개 표시)",
        "filter_col": "{col}", "input_row": "입력 {row}", "kernel_tile": "입력 채널 {row}, 필터 {col}",
        "weight": "가중치", "activation_value": "활성값", "pixel": "픽셀", "input_image": "입력 이미지",
        "maps_title": "{label}: {h}×{w}×{channels}", "maps_shown": " (채널 {channels}개 중 {shown}개 표시)",
        "map_tile": "{label}, 채널 {channel}",
        "predicted": "예측: 클래스 {cls} ({p:.1f}%)", "from_logits": " — 로짓의 소프트맥스",
        "scale_seq": "0부터의 척도 (값 ≥ 0)", "scale_div": "0 중심 척도",
        "call": "{cls}, 호출 {call}/{calls}",
    },
}

# Metric names Keras logs, with their Korean names (others keep their identifier).
METRICS_KO = {
    "loss": "손실", "accuracy": "정확도", "acc": "정확도", "sparse_categorical_accuracy": "정확도",
    "categorical_accuracy": "정확도", "binary_accuracy": "정확도",
    "top_k_categorical_accuracy": "top-k 정확도", "mae": "평균 절대 오차", "mse": "평균 제곱 오차",
    "mean_absolute_error": "평균 절대 오차", "mean_squared_error": "평균 제곱 오차", "auc": "AUC",
    "precision": "정밀도", "recall": "재현율",
}


def check_lang(lang, where: str) -> str:
    """`lang` itself when it is one of LANGS, else a ValueError naming `where`."""
    if lang not in LANGS:
        raise ValueError(f"{where}: argument `lang` must be one of {LANGS}, got {lang!r}")
    return lang


def label(lang: str, key: str, **values) -> str:
    """The label `key` in `lang`, filled with `values`."""
    text = LABELS[lang][key]
    return text.format(**values) if values else text


def is_accuracy(metric: str) -> bool:
    """True for a metric drawn in % (an accuracy of 0..1)."""
    name = metric.lower()
    return name in ("acc", "accuracy") or name.endswith("_accuracy") or name.endswith("_acc")


def metric_title(metric: str, lang: str) -> str:
    """A panel title: the metric's name (Korean when known), `(%)` for accuracies."""
    name = METRICS_KO.get(metric, metric) if lang == "ko" else metric
    return f"{name} (%)" if is_accuracy(metric) else name


DIAGRAM_KEYS = ("input_shape", "output_shape", "activation", "trainable", "dtype")


def diagram_words() -> Dict[str, Dict[str, str]]:
    """The diagram's words per language, for the report's language switch: line prefixes, Y/N, "multiple"."""
    return {lang: {**{key: LABELS[lang][key] + ": " for key in DIAGRAM_KEYS}, "yes": LABELS[lang]["yes"],
                   "no": LABELS[lang]["no"], "multiple": "multiple" if lang == "en" else "여러 형태"}
            for lang in LANGS}


def diagram_line(line: str, lang: str) -> str:
    """A box line of `plot_model` ("Input shape: ...") in `lang`."""
    if lang == "en":
        return line
    source, target = diagram_words()["en"], diagram_words()[lang]
    for key in DIAGRAM_KEYS:
        if line.startswith(source[key]):
            rest = line[len(source[key]):]
            if key == "trainable":
                rest = target["yes"] if rest == source["yes"] else target["no"]
            elif rest == source["multiple"]:
                rest = target["multiple"]
            return target[key] + rest
    return line
