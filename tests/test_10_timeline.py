"""Tests for course_lib.concepts.large_models: loading and validating the model timeline, the growth fit, the plot, 6ND."""
import math
import numpy as np
import pandas as pd
import pytest
from course_lib.concepts.large_models import (TIMELINE_COLUMNS, load_timeline, plot_timeline, growth_per_year,
                                 training_flops_estimate)

HEADER = ','.join(TIMELINE_COLUMNS)

def _write(tmp_path, rows, header=HEADER):
    p = tmp_path / 't.csv'
    p.write_text(header + '\n' + '\n'.join(rows) + '\n')
    return p

ROWS = ['A,2018,1000,,,,language decoder,yes,"src A, Table 1"',
        'B,2020,100000,,2000000,,language decoder,no,src B',
        'C,2022,10000000,1000000,20000000,1.2e14,language decoder (mixture of experts),yes,src C',
        'V,2012,500,,,,vision CNN,unknown,src V']

def test_load_shipped_file():
    df = load_timeline()
    assert list(df.columns) == TIMELINE_COLUMNS
    assert len(df) >= 15 and df['name'].is_unique
    assert df['year'].dtype.kind == 'i' and df['parameters'].dtype.kind == 'f'
    assert (df['parameters'] > 0).all() and df['source'].str.len().min() > 10
    assert set(df['open_weights']) <= {'yes', 'no', 'unknown'}
    assert df['year'].is_monotonic_increasing
    row = df.set_index('name').loc['GPT-3']
    assert row['parameters'] == 175e9 and row['training_tokens'] == 300e9 and row['open_weights'] == 'no'
    assert math.isnan(df.set_index('name').loc['BERT-base', 'training_tokens'])   # not stated: left empty

def test_load_small_file_types(tmp_path):
    df = load_timeline(_write(tmp_path, ROWS))
    assert df['name'].tolist() == ['V', 'A', 'B', 'C']          # sorted by year
    assert np.isnan(df.loc[1, 'training_tokens']) and df.loc[3, 'active_parameters'] == 1e6

def test_load_bad_header_names_expected(tmp_path):
    with pytest.raises(ValueError, match='name,year,parameters'):
        load_timeline(_write(tmp_path, ['A,2018,1000'], header='name,year,parameters'))

@pytest.mark.parametrize('row, col', [('A,20x8,1000,,,,k,yes,s', 'year'), ('A,2018,-5,,,,k,yes,s', 'parameters'),
                                      ('A,2018,,,,,k,yes,s', 'parameters'), ('A,2018,10,,abc,,k,yes,s', 'training_tokens'),
                                      ('A,2018,10,,,,k,maybe,s', 'open_weights'), ('A,2018,10,,,,k,yes,', 'source'),
                                      ('A,2018,10,20,,,k,yes,s', 'active_parameters')])
def test_load_rejects_bad_rows(tmp_path, row, col):
    with pytest.raises(ValueError, match=col):
        load_timeline(_write(tmp_path, [row]))

def test_growth_matches_polyfit_and_two_points(tmp_path):
    df = load_timeline(_write(tmp_path, ROWS))
    fit = growth_per_year(df, kinds='language')
    assert fit['n'] == 3
    slope, intercept = np.polyfit([2018, 2020, 2022], np.log10([1e3, 1e5, 1e7]), 1)
    assert fit['slope'] == pytest.approx(slope) and fit['intercept'] == pytest.approx(intercept)
    assert fit['slope'] == pytest.approx(1.0) and fit['factor_per_year'] == pytest.approx(10.0)
    assert fit['doubling_months'] == pytest.approx(12 * math.log10(2))
    two = growth_per_year(df, since=2018, until=2020)
    assert two['n'] == 2 and two['doubling_months'] == pytest.approx(12 * 2 * math.log(2) / math.log(100))
    assert growth_per_year(df, column='training_tokens')['n'] == 2

def test_growth_needs_two_years(tmp_path):
    df = load_timeline(_write(tmp_path, ROWS))
    with pytest.raises(ValueError, match='two rows'):
        growth_per_year(df, kinds='vision')

def test_training_flops_estimate_uses_active(tmp_path):
    df = load_timeline(_write(tmp_path, ROWS))
    est = training_flops_estimate(df)
    assert np.isnan(est[0]) and est[2] == 6 * 1e5 * 2e6 and est[3] == 6 * 1e6 * 2e7

def test_plot_timeline(tmp_path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    df = load_timeline(_write(tmp_path, ROWS))
    ax = plot_timeline(df)
    assert ax.get_yscale() == 'log' and len(ax.texts) == 4
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {'open weights', 'closed weights'} <= labels
    _, ax2 = plt.subplots()
    assert plot_timeline(df, ax=ax2, column='training_tokens', label=False) is ax2 and len(ax2.texts) == 0
    with pytest.raises(KeyError):
        plot_timeline(df, column='nope')
    plt.close('all')


# --- issue 15: the chapter's explanations, checked against the data file -------------------------------------------
from course_lib.concepts.large_models import what_2n_counts, minilm_path


def test_largest_dense_model_grew_after_2020():
    "The chapter once said the largest dense models 'stopped growing after about 2020' while listing PaLM 540B (2022)."
    df = load_timeline()
    dense = df[df['kind'].str.startswith('language') & ~df['kind'].str.contains('mixture')]
    top = dense.loc[dense['parameters'].idxmax()]
    gpt3 = dense.set_index('name').loc['GPT-3', 'parameters']
    assert top['name'] == 'PaLM' and top['year'] == 2022 and top['parameters'] > 3 * gpt3
    assert dense[dense['year'] > 2022]['parameters'].max() < top['parameters']


def test_attention_widens_the_chinchilla_gopher_gap():
    "The 17% 6ND gap is not explained by attention: attention is a larger share for the narrower Chinchilla."
    t = load_timeline().set_index('name')
    arch = {'Gopher': (80, 16384, 2048), 'Chinchilla': (80, 8192, 2048)}   # layers, width, context (the papers' tables)
    c6, c_attn = {}, {}
    for name, (L, d, ctx) in arch.items():
        n, tok = t.loc[name, 'parameters'], t.loc[name, 'training_tokens']
        c6[name] = 6 * n * tok
        c_attn[name] = c6[name] + 6 * L * ctx * d * tok
    gap6, gap_attn = c6['Chinchilla'] / c6['Gopher'], c_attn['Chinchilla'] / c_attn['Gopher']
    assert 1.16 < gap6 < 1.17 and gap_attn > gap6


@pytest.mark.parametrize('kind, start', [('language decoder', 'per token read or generated'),
                                         ('language decoder (mixture of experts)', 'per token read or generated'),
                                         ('language encoder', 'per input token read'),
                                         ('sentence encoder', 'per input token read'),
                                         ('language encoder-decoder', 'not one figure')])
def test_what_2n_counts(kind, start):
    "2N is not 'per generated token' for encoders (which do not generate) nor for T5 (decoder weights only)."
    assert what_2n_counts(kind).startswith(start)


def test_what_2n_counts_refuses_cnns():
    with pytest.raises(ValueError, match='per image'):
        what_2n_counts('vision CNN')


def test_minilm_path_is_the_bundled_folder():
    p = minilm_path()
    assert (p / 'config.json').exists() and (p / 'model.safetensors').exists()
    assert load_timeline().set_index('name').loc['all-MiniLM-L6-v2', 'parameters'] == 22713216
