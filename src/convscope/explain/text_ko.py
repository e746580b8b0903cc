"""한국어 설명 문장. 숫자와 공식은 `core`가 채워 넣는다 (Korean sentences of the explanations)."""

AXES = {"height": "높이", "width": "너비", "steps": "스텝", "depth": "깊이"}
SIDES = {"height": ("위쪽", "아래쪽"), "width": ("왼쪽", "오른쪽"), "steps": ("앞쪽", "뒤쪽"), "depth": ("앞면", "뒷면")}
CELLS = {"height": ("행", "행"), "width": ("열", "열"), "steps": ("스텝", "스텝"), "depth": ("장", "장")}

T = {
    "model_title": '모델 "{name}"',
    "layer_only_title": '층 "{name}"',
    "model_shapes": "입력 {inp} → 출력 {out}",
    "model_params": "전체 파라미터 {total}개 (학습되는 파라미터 {trainable}개, 학습되지 않는 파라미터 {non_trainable}개)",
    "model_compute": "샘플 하나를 처리하는 연산량: 곱셈-누산(MAC) {macs}회, 모두 합쳐 {flops} FLOPs",
    "model_memory": ("메모리: 특성 맵은 샘플당 {act_sample}, 배치({batch}개)당 {act_batch}이고 "
                     "파라미터는 {param_bytes}를 차지합니다"),
    "model_optimizer": ("옵티마이저({name})는 학습되는 파라미터 하나마다 값을 {slots}개 더 들고 있습니다. "
                        "옵티마이저 상태만 {state}이고, 가중치까지 치면 파라미터 메모리의 {multiplier}배입니다"),
    "largest": "파라미터가 가장 많은 층은 {name} ({cls})입니다. 전체 {total}개 중 {params}개({share:.1f}%)를 차지합니다.",
    "largest_dense_after_flatten": (" Flatten 바로 뒤의 Dense 층이라서, 펼쳐진 값 {inputs}개가 "
                                    "유닛 {units}개 하나하나와 모두 연결되기 때문입니다."),
    "convention_mac": "곱셈-누산(MAC) 1회는 곱셈 한 번과 덧셈 한 번이므로 2 FLOPs로 셉니다.",
    "convention_extra": ("편향 덧셈, 풀링 연산(최대 풀링은 비교, 평균 풀링은 덧셈과 나눗셈 — 윈도우 안의 실제 셀만), "
                         "배치 정규화(추론 시 원소마다 곱셈 한 번과 덧셈 한 번), 활성화 함수(원소마다 한 번)는 "
                         "따로 세어 FLOPs에 더합니다."),
    "convention_more": ("bilinear 업샘플링과 크기 조정은 축마다 값 하나에 곱셈 2회와 덧셈 1회, Rescaling과 "
                        "Normalization은 원소마다 2 FLOPs, LayerNormalization과 GroupNormalization은 통계와 정규화에 "
                        "원소마다 6회에 γ와 β가 각각 1회씩 더해진 것으로, UnitNormalization은 원소마다 3회로, "
                        "RMSNormalization은 원소마다 4회로 셉니다."),
    "convention_transpose": ("전치 합성곱의 MAC은 모든 입력 값 × 모든 필터의 모든 커널 칸으로 셉니다 "
                             "(출력 크기로 잘라 내기 전의 전체 출력)."),
    "convention_memory": "메모리는 값의 개수 × 층 dtype의 바이트 수로 계산하며, 배치 크기는 {batch}로 잡았습니다.",
    "layer_title": "{name} ({cls}): {inp} → {out}",
    "sec_shape": "출력 크기",
    "sec_params": "파라미터",
    "sec_kernels": "커널",
    "sec_compute": "연산량",
    "sec_memory": "메모리",
    "sec_receptive_field": "수용 영역",
    "sec_notes": "참고",
    # 출력 크기
    "shape_valid": '{axis} {n_in} → {n_out}: 패딩이 "valid"라서 패딩 없이 ⌊(W − D·(F−1) − 1)/S⌋ + 1 = {expr}입니다',
    "shape_same": ('{axis} {n_in} → {n_out}: 패딩이 "same"이면 출력 크기는 ⌈W/S⌉ = ⌈{n_in}/{stride}⌉ = {n_out}이고, '
                   "실제로 덧붙는 패딩은 {side_before} {before}칸, {side_after} {after}칸입니다"),
    "shape_general": "  일반식으로 쓰면 ⌊(W + P_앞 + P_뒤 − D·(F−1) − 1)/S⌋ + 1 = {expr}",
    "shape_familiar": "  익숙한 공식 {form}에 넣어 보면 {expr}",
    "shape_zero_pad": "{axis} {n_in} → {n_out}: {side_before} {before}칸 + {n_in} + {side_after} {after}칸 = {n_out}",
    "shape_global": "{axis} {n_in} → 없어짐: {whole} 특성 맵 전체가 채널마다 값 하나로 줄어듭니다",
    "shape_causal": ('{axis} {n_in} → {n_out}: 패딩이 "causal"이면 {side_before}에만 D·(K−1) = {pad_expr}칸을 '
                     "덧붙이므로 ⌈W/S⌉ = ⌈{n_in}/{stride}⌉ = {n_out}입니다"),
    "shape_channels_depthwise": ("채널 {c_in} → {c_out}: 입력 채널 수 × depth_multiplier = {c_in} × {m}. "
                                 "입력 채널마다 자기만의 특성 맵 {m}개가 생깁니다"),
    "shape_crop": "{axis} {n_in} → {n_out}: {n_in} − {side_before} {before}칸 − {side_after} {after}칸 = {n_out}",
    "shape_transpose": ('{axis} {n_in} → {n_out}: 패딩 "{padding}", (W − 1)·S − 2P + D·(K − 1) + 1 + '
                        "output_padding = {expr}"),
    "shape_transpose_same": ('{axis} {n_in} → {n_out}: 패딩이 "same"이고 output_padding이 없으면 W·S = '
                             "{n_in}·{stride} = {n_out}입니다"),
    "shape_transpose_default_op": ("  output_padding이 None이면 Keras는 max(D·(K − 1) + 1, S) − (D·(K − 1) + 1) = "
                                   "max({k_eff}, {stride}) − {k_eff} = {extra}을 씁니다"),
    "shape_transpose_full": ("  입력 칸마다 커널을 흩뿌리므로 전체 출력은 {expr} = {full}칸이고, "
                             "{side_before}에서 {before}칸, {side_after}에서 {after}칸을 잘라 내면 {n_out}칸이 남습니다 "
                             "(잘라 낼 칸이 음수이면 0을 덧붙입니다)"),
    "shape_upsample": "{axis} {n_in} → {n_out}: W × size = {n_in} × {factor} = {n_out}",
    "shape_resize": "{axis} {n_in} → {n_out}: 지정한 목표 크기입니다",
    "shape_resize_crop": ("crop_to_aspect_ratio: 먼저 목표 종횡비에 맞는 가운데 {rows}×{cols} 영역({top}행, "
                          "{left}열부터)을 잘라 냅니다"),
    "shape_resize_pad": ("pad_to_aspect_ratio: 먼저 목표 종횡비에 맞도록 위아래에 fill_value {rows}행, "
                         "좌우에 {cols}열을 덧붙입니다"),
    "shape_interpolation": "보간 방법: {method}",
    "interp_nearest": "nearest (출력 칸마다 그 중심이 놓인 입력 칸의 값을 그대로 복사)",
    "interp_bilinear": ("bilinear (출력 칸마다 중심 주변의 입력 2×2칸을 거리에 따라 가중 평균; 픽셀 중심 기준, "
                        "align_corners=False)"),
    "shape_permute": "Permute dims={dims}: 배치 축 뒤의 축 순서만 바꿉니다, {inp} → {out}. 값은 바뀌지 않습니다",
    "shape_operation": "입력에 ops.{op}를 적용합니다 → {shape}",
    "shape_dropped": ("  나눗셈을 내림하기 때문에 (패딩된) 입력의 {side} {count}{cells}은 어떤 윈도우도 "
                      "닿지 않아 버려집니다"),
    "shape_window": "  윈도우 {kernel}칸 (팽창 {dilation}을 적용하면 실제로 {effective}칸), 스트라이드 {stride}",
    "shape_channels_conv": "채널 {c_in} → {c_out}: 필터 하나가 특성 맵 하나를 만들므로 출력 채널 수는 필터 수와 같습니다",
    "shape_adaptive": ("{axis} {n_in} → {n_out}: 출력 칸 i는 입력 칸 ⌊i·{n_in}/{n_out}⌋부터 "
                       "⌈(i + 1)·{n_in}/{n_out}⌉ − 1까지를 모읍니다: {windows}"),
    "shape_adaptive_even": ("{axis} {n_in} → {n_out}: 출력 칸마다 입력 {n_in}/{n_out} = {size}칸씩 겹치지 않게 "
                            "모읍니다 (윈도우와 stride가 {size}인 풀링과 같습니다)"),
    "shape_channels_pool": "채널 {c} → {c}: 풀링은 채널마다 따로 적용됩니다",
    "shape_embedding": ("인덱스(0부터 {last}까지)마다 학습된 값 {width}개짜리 행으로 바뀝니다: {inp} → {out}"),
    "shape_dense": "Dense는 마지막 축에만 작용합니다: {n_in} → {units}, 나머지 축 {rest}은 그대로입니다",
    "shape_flatten": "Flatten은 값을 한 줄로 펼칩니다: {expr} = {total}",
    "shape_attention": ("헤드 {heads}개가 쿼리의 위치 {targets}개 각각에서 값의 위치 {sources}개를 봅니다 "
                        "(key_dim {key_dim}, value_dim {value_dim}): {inp} → {out}"),
    "shape_recurrent": "{cls}: 셀을 시간 단계 {steps}개에 걸쳐{both} 실행합니다, 유닛 {units}개: {inp} → {out}",
    "both_directions": " 앞으로 한 번, 뒤로 한 번",
    "unknown_steps": "(수를 모르는)",
    "compute_recurrent_unknown": ("시간 단계마다 MAC = {twice}게이트 수 × 유닛 × (입력 + 유닛) = {twice}{expr} = {per}회; "
                                  "여기에 실행할 때에야 알 수 있는 단계 수를 곱합니다"),
    "shape_attention_plain": ("쿼리의 위치 {targets}개 각각이 특성 {key_dim}개로 낸 점수로 값의 위치 {sources}개를 보고, "
                              "특성 {value_dim}개의 값을 가중 평균합니다: {inp} → {out}"),
    "shape_einsum": "EinsumDense는 입력 {inp}와 커널로 {equation}을 계산합니다 → {out}",
    "shape_repeat": "RepeatVector는 샘플마다 벡터를 새 축 1을 따라 {n}번 복사합니다: {inp} → {out}",
    "shape_reshape": "Reshape: 같은 값 {total}개를 모양만 바꿔 다시 배치합니다",
    "shape_same_as_input": "출력 크기는 입력과 같습니다: {shape}",
    "shape_other": "{cls}의 출력 크기 {inp} → {out}는 식이 아니라 층을 실행해서 얻은 것입니다",
    # 파라미터
    "params_conv": "필터 수 × ({inner} + 1) = {expr} = {total}개 (+1은 필터마다 하나씩 있는 편향)",
    "params_conv_nobias": "필터 수 × {inner} = {expr} = {total}개 (편향 없음)",
    "params_conv_alt": "({alt} + 1)·필터 수로 써도 {expr} = {total}개입니다. 패딩과 스트라이드는 파라미터 수를 바꾸지 않습니다",
    "params_depthwise_conv": ("{window}·in·depth_multiplier + in·depth_multiplier = {expr} = {total}개 "
                              "(출력 채널마다 편향 하나)"),
    "params_depthwise_conv_nobias": "{window}·in·depth_multiplier = {expr} = {total}개 (편향 없음)",
    "params_separable_conv": ("깊이별(depthwise) {window}·in·depth_multiplier + 점별(pointwise) "
                              "in·depth_multiplier·필터 수 + 필터 수 = {expr} = {total}개"),
    "params_separable_conv_nobias": ("깊이별(depthwise) {window}·in·depth_multiplier + 점별(pointwise) "
                                     "in·depth_multiplier·필터 수 = {expr} = {total}개 (편향 없음)"),
    "params_separable_sum": "분리 합성곱 = 깊이별 + 점별 (+ 편향): {depthwise} + {pointwise} + {bias} = {total}개",
    "params_transpose": ("{window}·필터 수·in + 필터 수 = {expr} = {total}개 (커널 모양 ({window_axes}, filters, in), "
                         "필터마다 편향 하나)"),
    "params_transpose_nobias": "{window}·필터 수·in = {expr} = {total}개 (편향 없음)",
    "params_rms_norm": "{size}: scale, 정규화하는 축 {axes}의 위치마다 하나 (RMSNormalization은 평균을 빼지 않아 이동 값이 없습니다)",
    "params_layer_norm": ("{count} × {size} = {total}개: 정규화하는 축 {axes}의 위치마다 {which}가 하나씩 있고, "
                          "기울기로 학습됩니다"),
    "params_group_norm": "{count} × {channels} = {total}개: 채널마다 {which}가 하나씩 있고, 기울기로 학습됩니다",
    "weight_names": {"gamma": "γ", "beta": "β"},
    "and": "와 ",
    "params_normalization": ("2 × {size} + 1 = {total}개: 유지되는 축의 위치마다 평균과 분산 하나씩, 그리고 개수(count) "
                             "하나입니다. 모두 기울기가 아니라 adapt()로 정해지므로 학습되지 않는 파라미터입니다"),
    "params_normalization_given": "파라미터가 없습니다. 평균과 분산을 상수로 주었기 때문입니다",
    "params_recurrent": ("{twice}게이트 수 × 유닛 × (입력 + 유닛{bias}) = {expr} = {total}: 게이트의 유닛마다 입력(커널)과 "
                         "직전 상태(순환 커널)에 가중치를 둡니다"),
    "recurrent_biases": {1: "편향", 2: "편향 2개"},
    "params_embedding": "input_dim × output_dim = {vocabulary} × {width} = {total}개 (인덱스마다 행 하나)",
    "params_dense": "입력 × 유닛 + 유닛 = {expr} = {total}개 (마지막 축의 가중치에 유닛마다 편향 하나)",
    "params_dense_nobias": "입력 × 유닛 = {expr} = {total}개 (편향 없음)",
    "params_bn": ("{factor} × C = {expr} = {total}개입니다. 이 중 γ와 β({trainable}개)만 기울기로 학습되고, "
                  "이동 평균과 이동 분산({non_trainable}개)은 학습 중 배치 통계의 이동 평균으로 갱신되어 "
                  "추론 때 쓰일 뿐이라 학습되지 않는 파라미터로 셉니다"),
    "params_none": "파라미터가 없습니다. 이 층에는 학습할 값이 없습니다",
    "params_other": "가중치에 파라미터 {total}개가 있습니다",
    "params_frozen": "trainable=False라서 {total}개 모두 학습되지 않는 파라미터로 셉니다",
    # 커널
    "kernels": "커널 수 = 필터 수 × {per} = {expr} = {count}개, 각각 {size} 크기입니다",
    "kernels_per_filter": ("필터 하나는 {group_note}입력 채널마다 커널을 하나씩, 모두 {per}개 쌓은 것이라 "
                           "가중치가 {per}·{taps} = {weights}개입니다"),
    "kernels_depthwise": ("깊이별(depthwise): 입력 채널 수 × depth_multiplier = {expr} = {count}개, 각각 {size} "
                          "크기이고 입력 채널 하나만 훑습니다"),
    "kernels_pointwise": ("점별(pointwise): 필터 수 × in·depth_multiplier = {expr} = {count}개, 각각 {one} "
                          "크기로 한 위치의 채널들을 섞습니다. 모두 합쳐 커널 {total}개입니다"),
    "kernels_transpose": ("커널 수 = 필터 수 × 입력 채널 수 = {expr} = {count}개, 각각 {size} 크기입니다 "
                          "(커널 모양 {shape}). 입력 채널의 값이 필터마다 커널 하나로 출력에 퍼집니다"),
    "kernels_group_note": "자기 그룹의 ",
    "kernels_not_filters": ("필터는 {filters}개지만 커널은 {count}개입니다. 필터 수와 커널 수는 다릅니다 "
                            "(weights.T.shape = {shape_t})"),
    # 연산량
    "compute_macs_attention": ("MAC = 투영의 {projections}회 + 헤드 {heads}개 × 점수 {targets}·{sources}개 "
                               "× (key_dim {key_dim} + value_dim {value_dim}) = {macs}회"),
    "compute_macs_attention_plain": ("MAC = 점수 {targets}·{sources}개 × (점수마다 특성 {key_dim}개 + 가중 평균마다 "
                                     "{value_dim}개) = {macs}회"),
    "compute_macs_recurrent": ("MAC = {twice}시간 단계 × 게이트 수 × 유닛 × (입력 + 유닛) = {expr} = {macs}회 (단계마다 "
                               "입력과 직전 상태에 커널을 곱합니다)"),
    "compute_macs_einsum": "MAC = 배치를 뺀 모든 축 크기의 곱 ({letters}) = {expr} = {macs}회",
    "compute_macs": "MAC = 출력 원소 수 × {per_name} = {outputs_expr} × {per_expr} = {macs}회",
    "compute_flops": "FLOPs = 2 × MAC = {flops2}",
    "compute_bias": "+ 편향 덧셈 {count}회",
    "compute_activation": "+ {activation} 활성화 계산 {count}회",
    "compute_pool_max": "+ 비교 {count}회 (출력마다 윈도우의 실제 셀 수 − 1)",
    "compute_pool_avg": "+ 덧셈과 나눗셈 {count}회 (출력마다 셀 수 − 1번 더하고 한 번 나눔)",
    "compute_norm": "+ 정규화 {count} FLOPs (원소마다 곱셈 한 번, 덧셈 한 번)",
    "compute_time_distributed_unknown": "단계마다 {per} FLOPs (감싼 층의 연산량) × 시간 단계 수(여기서는 알 수 없어 합계에서 뺍니다)",
    "compute_time_distributed": "단계마다 {per} FLOPs (감싼 층의 연산량) × {steps}단계 = {flops} FLOPs",
    "compute_model": "{flops} FLOPs ({macs} MAC), 그 안의 층 {count}개의 합",
    "compute_spectral_norm": "{flops} FLOPs, 감싼 층의 연산량 (학습 중에는 커널에 대한 거듭제곱법이 먼저 실행됩니다)",
    "compute_attention_softmax": "+ softmax {count} FLOPs (점수마다 3회: 지수, 합, 나눗셈)",
    "compute_rms_norm": "+ 정규화 {count} FLOPs (원소마다 {per}회: 제곱, 평균, 1 / RMS 곱셈, scale 곱셈)",
    "compute_dot_normalize": "+ 두 입력을 먼저 길이 1로 맞추는 {count} FLOPs (입력 값마다 3회: 제곱, 합, 1 / 노름 곱셈)",
    "compute_unit_norm": "+ 정규화 {count} FLOPs (원소마다 {per}회: 제곱, 합, 1 / 노름 곱셈)",
    "compute_total": "합계 {flops} FLOPs",
    "compute_none": "산술 연산이 없습니다. 값을 옮기거나 복사할 뿐입니다",
    "compute_unknown": "연산량은 세지 않았습니다: convscope에는 {cls}의 연산을 세는 식이 없습니다",
    "per_conv": "in/groups·커널 크기",
    "per_depthwise": "커널 칸 수",
    "compute_macs_separable": ("MAC = 깊이별 위치 {positions}개 × 커널 {kernels}개 × {taps} = {depthwise}회"
                               " + 점별 {positions} × {pointwise_expr} = {pointwise}회, 모두 {macs}회"),
    "compute_macs_transpose": ("MAC = 입력 원소 수 × 커널 크기·필터 수 = {inputs_expr} × {per_expr} = {macs}회 "
                               "(잘라 내기 전, 모든 입력 값에 모든 필터의 모든 칸을 곱함)"),
    "compute_layer_norm": ("+ 정규화 {count} FLOPs (원소마다 {per}회: 평균, 분산, 정규화, 그리고 γ와 β)"),
    "compute_rescale": "+ {count} FLOPs (원소마다 scale 곱셈 한 번과 offset 덧셈 한 번)",
    "compute_standardize": "+ {count} FLOPs (원소마다 평균 뺄셈 한 번과 표준편차 나눗셈 한 번)",
    "compute_resize": "+ 보간 {count} FLOPs (행 방향, 열 방향으로 값마다 곱셈 2회와 덧셈 1회)",
    "compute_operation": "ops.{op}: 이 연산의 산술은 여기서 세지 않습니다",
    "compute_elementwise": "+ 원소별 ops.{op} 계산 {count}회 (출력 값마다 한 번)",
    "per_dense": "입력 수",
    # 메모리
    "memory_act": ("출력 값 {values}개 × {itemsize}바이트 = 샘플당 {per_sample}, "
                   "배치({batch}개)당 {per_batch}"),
    "memory_params": "파라미터 {params}개 × {itemsize}바이트 = {bytes}",
    # 수용 영역
    "rf_size": ("출력 유닛 하나가 보는 입력 영역(수용 영역)은 {size_h}×{size_w} 픽셀입니다. "
                "이웃한 유닛끼리는 입력에서 {jump_h}×{jump_w} 픽셀씩 떨어져 있고(jump), "
                "(0, 0) 유닛의 수용 영역은 입력의 ({start_h}, {start_w})에서 시작합니다"),
    "rf_padding": "  시작 위치가 음수이면 그 부분은 패딩 안에 있습니다",
    "rf_step": ("  {axis}: 크기 {prev_size} + ({effective} − 1)·{prev_jump} = {size}, "
                "jump {prev_jump}·{stride} = {jump}, 시작 {prev_start} − {pad}·{prev_jump} = {start}"),
    "rf_all": "모든 유닛이 입력 전체를 봅니다",
    "rf_size_3d": ("출력 유닛 하나가 보는 입력 영역(수용 영역)은 {size_d}×{size_h}×{size_w} 칸(깊이 × 높이 × 너비)입니다. "
                   "이웃한 유닛끼리는 입력에서 {jump_d}×{jump_h}×{jump_w} 칸씩 떨어져 있고(jump), (0, 0, 0) 유닛의 "
                   "수용 영역은 입력의 ({start_d}, {start_h}, {start_w})에서 시작합니다"),
    "rf_size_1d": ("출력 유닛 하나가 보는 입력 영역(수용 영역)은 {size}스텝입니다. 이웃한 유닛끼리는 입력에서 "
                   "{jump}스텝씩 떨어져 있고(jump), 0번 유닛의 수용 영역은 입력의 {start}번 스텝에서 시작합니다"),
    "rf_crop_step": "  {axis}: 크기와 jump는 그대로, 시작 {prev_start} + {cut}·{prev_jump} = {start}",
    "rf_model": "여기서는 모델 '{name}'을 지나는 수용 영역을 따라가지 않습니다 (그 모델의 설명이 층마다 따라갑니다)",
    "rf_untracked": ("{cls} 층을 지나는 수용 영역은 따라가지 않습니다. 출력 칸마다 읽는 입력 칸 수가 달라서 "
                     "크기와 jump 하나로 나타낼 수 없기 때문입니다"),
    # 참고
    "note_pool": "풀링 층에는 파라미터가 없습니다. 윈도우마다 {what}을 고를 뿐입니다.",
    "note_pool_max": "최댓값",
    "note_pool_avg": "평균",
    "note_xcorr": ("{cls}가 실제로 계산하는 것은 합성곱이 아니라 교차 상관(cross-correlation)입니다. "
                   "커널을 뒤집지 않고 그대로 곱하는데, 커널 값은 어차피 학습으로 정해지므로 결과는 다르지 않습니다."),
    "note_same_asym": ('"same" 패딩에서 남는 한 칸은 {sides}에 붙습니다(TensorFlow 방식). 그래서 여기서는 패딩이 '
                       "비대칭이고, 양쪽에 똑같이 붙이는 PyTorch의 패딩과는 결과가 다릅니다."),
    "note_dilation": "팽창(dilation) {dilation} 때문에 {kernel}칸짜리 커널이 입력 {effective}칸에 걸쳐 펼쳐집니다.",
    "note_augment": ("무작위 데이터 증강 층입니다. 학습 때는 이미지마다 무작위로 바꾸고(set_random_seed나 seed=로 "
                     "재현 가능), 추론 때는 이미지를 그대로 내보내므로 수용 영역은 이 층을 그대로 지나갑니다."),
    "note_noise": ("가우시안 잡음 층에는 파라미터가 없습니다(가우시안·알파 드롭아웃도 마찬가지). 추론 때는 입력을 그대로 "
                   "내보내고(수용 영역은 이 층을 그대로 지나갑니다), 학습 때만 무작위 잡음을 더하거나 곱하는 정규화 "
                   "층입니다(알파 드롭아웃은 떨군 값을 SELU의 음의 포화값으로 두고 다시 맞춰 SELU의 평균과 분산을 "
                   "지킵니다)."),
    "note_embedding": ("Embedding은 행을 찾아 올 뿐 곱셈이 없고, 학습 한 번에 배치에 나온 인덱스의 행만 "
                       "바뀝니다."),
    "note_dropout": ("드롭아웃에는 파라미터가 없습니다. 추론 때는 입력을 그대로 내보내고, 학습 때만 값의 {percent}를 "
                     "무작위로 0으로 만들고 나머지를 1/(1 − {rate})배 키웁니다."),
    "note_largest": "이 층이 전체 파라미터의 {share:.1f}%를 차지해 모든 층 중 가장 많습니다.",
    "note_depthwise": ("깊이별 합성곱은 입력 채널마다 따로 합성곱을 하고 채널끼리는 섞지 않습니다 "
                       "(groups = 입력 채널 수인 {conv}와 같습니다)."),
    "note_separable": ("같은 {size} 필터 {filters}개를 쓰는 {conv}라면 파라미터가 {full}개 필요하지만, "
                       "분리 합성곱은 {params}개로 {ratio}배 적습니다."),
    "note_transpose": ("{cls}는 {conv}의 입력에 대한 기울기 연산입니다(\"디컨볼루션\"은 이름뿐입니다). "
                       "입력 값 하나를 윈도우 전체로 퍼뜨릴 뿐, 합성곱을 거꾸로 되돌리지는 않습니다."),
    "note_causal": ("causal 패딩: 출력 스텝 t는 입력을 t·strides까지만 보고 그 뒤는 보지 않으므로, 모델이 "
                    "미래를 볼 수 없습니다."),
    "note_spatial_dropout": ("공간 드롭아웃은 특성 맵을 통째로 버립니다. 이웃한 픽셀(또는 스텝)끼리는 상관이 강하기 때문에 "
                             "샘플과 채널마다 한 번씩만 뽑습니다."),
    "note_upsample": "nearest 업샘플링에는 파라미터도 산술 연산도 없습니다. 값마다 size번 복사할 뿐입니다.",
    "shape_global_1d": "{axis} {n_in} → 없어짐: {n_in}스텝짜리 시퀀스 전체가 채널마다 값 하나로 줄어듭니다",
    "rf_untracked_input": ("여기서는 수용 영역을 따라가지 않습니다. 입력 중 하나가 수용 영역을 따라가지 않는 층을 "
                           "거쳐 오기 때문입니다"),
    "note_rescaling": "Rescaling은 원소마다 y = x · scale + offset을 계산합니다. 학습할 파라미터는 없습니다.",
    "note_normalization": ("Normalization은 y = (x − 평균) / max(√분산, 1e-7)을 계산합니다. 평균과 분산은 유지되는 "
                           "축 {axes}의 위치마다 하나씩이고, adapt(data)가 데이터로부터 정합니다."),
    "note_group_norm": ("GroupNormalization은 축 {axis}의 채널 {channels}개를 {per}개씩 {groups}개의 그룹으로 나누고 "
                        "y = (x − 평균) / √(분산 + ε) · γ + β를 계산합니다. 평균과 분산은 배치가 아니라 샘플마다 "
                        "그룹의 모든 위치와 모든 채널에 걸쳐 구하므로 학습 때와 추론 때가 같고 배치 크기와 상관없습니다. "
                        "각 출력은 그 그룹 채널의 모든 위치에 의존하므로 수용 영역은 입력 전체입니다."),
    "note_rms_norm": ("RMSNormalization은 샘플마다 축 {axes}에 대해 y = x / √(mean(x²) + ε) · scale을 계산합니다. "
                      "LayerNormalization과 달리 평균을 빼지도, 값을 더하지도 않습니다"),
    "note_unit_norm": ("UnitNormalization은 샘플마다 축 {axes}를 따라 놓인 벡터를 L2 노름 √Σx²(최소 1e-12)로 "
                       "나눕니다. 그런 벡터는 모두 길이가 1이 됩니다. 파라미터가 없고 학습 때와 추론 때가 같습니다."),
    "note_layer_norm": ("LayerNormalization은 y = (x − 평균) / √(분산 + ε) · γ + β를 계산합니다. 평균과 분산은 "
                        "배치가 아니라 샘플마다 축 {axes}에 걸쳐 구하므로(BatchNormalization과 다름) 학습 때와 추론 "
                        "때가 같습니다."),
    # 그래프 모델: 호출, 입력, 병합 층과 수용 영역의 합집합
    "model_shapes_many": "입력 {inp} → 출력 {out}",
    "model_shared": ("{name} ({cls}) 층은 {calls}번 호출됩니다. 파라미터 {params}개는 전체 합계에 한 번만 세고, "
                     "연산량과 특성 맵은 호출마다 셉니다."),
    "layer_call_title": "{name} ({cls}), {calls}번 중 {call}번째 호출: {sources}에서 — {inp} → {out}",
    "shape_inbound": "입력: {sources}의 출력",
    "shape_input": "모델 입력: {shape}. InputLayer는 값을 바꾸지 않고 그대로 넘깁니다",
    "shape_merge": "입력 {count}개 {shapes}의 원소별 {op} → {out}",
    "shape_time_distributed_unknown": ("{inner}을 각 시간 단계에 적용합니다(단계 수는 알 수 없음): 단계마다 {step_in} → "
                                       "{step_out}, 축 1로 쌓아 → {out}"),
    "shape_time_distributed": ("{inner}을 시간 단계 {steps}개 각각에 적용합니다: 단계마다 {step_in} → {step_out}, "
                               "축 1로 쌓아 → {out}"),
    "shape_model": ("층 {count}개로 된 모델을 한 층처럼 호출합니다: {inp} → {out} "
                    "(그 층들은 cs.explain(model.get_layer('{name}'))이 설명합니다)"),
    "shape_spectral_norm": ("{inner}: 학습 호출마다 커널을 가장 큰 특잇값(거듭제곱법으로 추정)으로 나눈 뒤 실행합니다 "
                            "→ {out}"),
    "shape_dot": ("샘플마다 입력 1의 축 {a0}와 입력 2의 축 {a1}의 내적을 구합니다({k}쌍의 곱을 더함): "
                  "{x} · {y}, 두 축이 사라져 → {out}"),
    "shape_concat": "축 {axis}를 따라 이어 붙입니다: {expr} = {total}. 나머지 축의 크기는 같아야 합니다",
    "merge_ops": {"Add": "합", "Subtract": "차", "Multiply": "곱", "Average": "평균",
                  "Maximum": "최댓값", "Minimum": "최솟값"},
    "params_shared": ("{calls}번 중 {call}번째 호출: 첫 번째 호출과 같은 파라미터 {total}개를 씁니다 "
                      "(가중치는 한 벌이라 전체 합계에는 한 번만 셉니다)"),
    "compute_merge": "+ 원소별 연산 {count}회: 출력마다 ({n} − 1)회 × 출력 {outputs}개",
    "compute_merge_scaled": "+ 곱셈과 덧셈 {count}회: x + scale·r, 출력마다 2회 × 출력 {outputs}개",
    "compute_merge_average": "+ 덧셈과 나눗셈 {count}회: 출력마다 덧셈 ({n} − 1)회와 나눗셈 1회 × 출력 {outputs}개",
    "compute_concat": "산술 연산이 없습니다. Concatenate는 입력을 나란히 복사할 뿐입니다",
    "rf_union": ("{name} 다음: 가지 {count}개의 수용 영역을 합친 것입니다. 가장 큰 수용 영역은 {largest}"
                 "({source}에서 옴)이고, 나머지는 {others}입니다"),
    "rf_union_same": "{name} 다음: 가지 {count}개의 수용 영역을 합친 것이며, 각각 {size}입니다",
    "rf_branch": "  {source}에서: {size}, 간격(jump) {jump}, 시작 ({start})",
    "rf_branch_all": "  {source}에서: 입력 전체",
}
