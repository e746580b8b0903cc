"""convscope.explain: the seeds' questions answered with their own numbers, in English and Korean."""

import json

import numpy as np
import pytest

from convscope.explain import explain
from convscope.layers import Conv2D, Dense, Input, MaxPool2D
from convscope.models import Sequential
from seed_models import seed000_model, seed001_model


def text_of(item, key):
    return "\n".join(item.section(key))


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_seed001_first_conv_shape_and_parameters(lang):
    first = explain(seed001_model(), lang=lang).layer(0)
    shape = text_of(first, "shape")
    assert "28 → 28" in shape
    assert "(28 − 3 + 2·1)/1 + 1 = 28" in shape
    assert "75 × (1·3·3 + 1) = 750" in text_of(first, "params")


def test_seed001_batch_norm_third_pool_and_largest_layer():
    result = explain(seed001_model())
    bn = text_of(result.layer("batch_normalization"), "params")
    assert "4 × 75 = 300" in bn and "2 × 75 = 150" in bn and "non-trainable" in bn
    pool = text_of(result.layer("max_pooling2d_2"), "shape")
    assert "7 → 4" in pool and "⌈7/2⌉ = 4" in pool and "0 top, 1 bottom" in pool and "0 left, 1 right" in pool
    assert "(7 − 2 + 0 + 1)/2 + 1 = 4" in pool
    assert "no parameters" in text_of(result.layer("max_pooling2d_2"), "notes").lower()
    assert result.model_notes[0].startswith("dense (Dense) holds the most parameters: 205,312 of 264,562")
    assert "Dense after Flatten" in result.model_notes[0]
    assert "Total params: 264,562 (trainable 264,262, non-trainable 300)" in result.to_text()


@pytest.mark.parametrize("lang,words", [("en", "2,048 kernels of 2×2"), ("ko", "2,048개, 각각 2×2")])
def test_seed000_second_conv_kernels_are_not_filters(lang, words):
    model = seed000_model()
    second = explain(model, lang=lang).layer(2)
    kernels = text_of(second, "kernels")
    assert "64 × 32 = 2,048" in kernels and words in kernels
    # the post's own check: weights[2].T.shape == (64, 32, 2, 2), i.e. 64·32 kernels of 2x2
    assert model.get_weights()[2].T.shape == (64, 32, 2, 2)
    assert "(64, 32, 2, 2)" in kernels


def test_seed004_conv_dense_and_pool():
    conv = Conv2D(filters=16, kernel_size=(5, 5), strides=(1, 1))
    assert conv(np.zeros((2, 300, 300, 3), dtype=np.float32)).shape == (2, 296, 296, 16)
    result = explain(conv)
    shape, params = text_of(result.layer(0), "shape"), text_of(result.layer(0), "params")
    assert "300 → 296" in shape and "(300 − 5 + 2·0)/1 + 1 = 296" in shape
    assert "(5·5·3 + 1)·16 = 1,216" in params
    dense = Dense(30)
    dense(np.zeros((64, 10, 20), dtype=np.float32))
    assert "20 × 30 + 30 = 630" in text_of(explain(dense).layer(0), "params")
    pool = MaxPool2D()
    pool(np.zeros((1, 296, 296, 2), dtype=np.float32))
    pooled = explain(pool).layer(0)
    assert "296 → 148" in text_of(pooled, "shape") and pooled.numbers.params == 0


def test_seed000_flops_match_an_independent_count():
    numbers = explain(seed000_model()).numbers
    # Counted by hand from the definitions: conv MACs = outputs × kh·kw·in, dense MACs = in × units,
    # 2x2 max pooling = 3 comparisons per output, one add per bias, one evaluation per activated value.
    conv1 = 28 * 28 * 32
    conv2 = 14 * 14 * 64
    macs = conv1 * 5 * 5 * 1 + conv2 * 2 * 2 * 32 + (7 * 7 * 64) * 1000 + 1000 * 10
    bias_adds = conv1 + conv2 + 1000 + 10
    activations = conv1 + conv2 + 1000 + 10
    comparisons = 3 * (14 * 14 * 32) + 3 * (7 * 7 * 64)
    assert numbers.macs == macs == 5_378_832
    assert numbers.flops == 2 * macs + bias_adds + activations + comparisons
    result = explain(seed000_model())
    assert f"{numbers.flops:,} FLOPs" in result.to_text()
    assert "1 multiply-accumulate (MAC) = 2 FLOPs" in result.conventions[0]


def test_floor_drops_dilation_and_asymmetric_same_are_said():
    model = Sequential([Input(shape=(8, 9, 2)), Conv2D(4, 3, strides=2),
                        Conv2D(4, 3, dilation_rate=2, padding="same"), Conv2D(2, 2, strides=2, padding="same")])
    result = explain(model)
    first = text_of(result.layer(0), "shape")
    assert "⌊(8 − 3 + 2·0)/2⌋ + 1 = 3" in first
    assert "the floor drops 1 row at the bottom" in first and "column" not in first
    dilated = text_of(result.layer(1), "shape")
    assert "⌊(3 + 2 + 2 − 2·(3−1) − 1)/1⌋ + 1 = 3" in dilated
    assert "Dilation 2 spreads the 3-tap kernel over 5 input cells" in text_of(result.layer(1), "notes")
    last = result.layer(2)
    assert "0 top, 1 bottom" in text_of(last, "shape")
    assert "PyTorch" in text_of(last, "notes")
    field = text_of(last, "receptive_field")
    # 3 + (5-1)*2 = 11, then 11 + (2-1)*2 = 13; jumps 2, 2, 4
    assert "13×13 input pixels" in field and "4×4 pixels apart" in field
    markdown = result.to_markdown()
    assert "  - general form ⌊(W + P\\_before + P\\_after" in markdown  # nested bullet, _ escaped


def test_korean_reads_as_korean():
    text = explain(seed001_model(), lang="ko").to_text()
    for word in ("필터", "커널", "특성 맵", "패딩", "스트라이드", "파라미터", "수용 영역", "교차 상관"):
        assert word in text, word
    assert "전체 파라미터 264,562개" in text
    assert "Parameters" not in text and "Receptive field" not in text


def test_to_dict_schema_and_renderings():
    result = explain(seed000_model())
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["schema"] == "convscope.explain/1" and data["lang"] == "en"
    assert data["model"]["params"] == 3_156_098 and data["model"]["largest_layer"] == "dense"
    assert len(data["layers"]) == 9
    conv2 = data["layers"][2]
    assert conv2["kernels"] == {"count": 2048, "size": [2, 2], "filters": 64, "in_channels": 32, "groups": 1,
                                "weights_per_filter": 128}
    assert conv2["receptive_field"] == [{"axis": "height", "size": 8, "jump": 2, "start": -2},
                                        {"axis": "width", "size": 8, "jump": 2, "start": -2}]
    assert [s["key"] for s in conv2["sections"]] == ["shape", "params", "kernels", "compute", "memory",
                                                     "receptive_field", "notes"]
    assert data["layers"][5]["receptive_field"] is None
    markdown = result._repr_markdown_()
    assert markdown.startswith('## Model "sequential"') and "### 3. conv2d_1 (Conv2D)" in markdown
    page = result._repr_html_()
    assert "<h4>3. conv2d_1 (Conv2D)" in page and "&quot;sequential&quot;" in page
    assert repr(result).startswith("<Explanation of 'sequential' (en): 9 layer(s), 3,156,098 params")


def test_optimizer_state_is_explained_once_compiled():
    model = seed000_model()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    line = explain(model).model_lines[-1]
    assert line.startswith("Optimizer Adam keeps 2 extra value(s) per trainable parameter")
    assert "× 3 in all" in line


def test_errors_name_function_argument_and_value():
    with pytest.raises(ValueError, match=r"explain: argument `lang` must be one of \['en', 'ko'\], got 'fr'"):
        explain(seed000_model(), lang="fr")
    with pytest.raises(TypeError, match=r"explain: argument `model_or_layer` must be a convscope Sequential "
                                        r"model or layer, got str"):
        explain("model.py")
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=rf"explain: argument `batch_size` must be a positive int or None, "
                                             rf"got {bad!r}"):
            explain(seed000_model(), batch_size=bad)
    with pytest.raises(ValueError, match=r"explain: argument `batch_size` must be a positive int or None, got -1"):
        explain(seed000_model().layers[0], batch_size=-1)
    with pytest.raises(ValueError, match=r"Explanation.layer: no layer named 'nope'"):
        explain(seed000_model()).layer("nope")
    with pytest.raises(ValueError, match=r"LayerExplanation.section: argument `key` must be one of"):
        explain(seed000_model()).layer(0).section("flops")
