"""User templates: sandboxed, bounded, and never an exception."""

from __future__ import annotations

import pytest

from alert_contacts.domain.templates import (
    MAX_TEMPLATE_OUTPUT,
    render_template,
    template_context,
)

from .delivery_data import SHANGHAI, notification

CONTEXT = template_context(notification(), notification().alerts, SHANGHAI)


def test_a_template_sees_plain_data() -> None:
    result = render_template(
        "{{ status }} {{ alerts|length }} {{ firing[0].labels.service }}"
        " {{ resolved[0].ends_at }} {{ common_labels.severity }}",
        CONTEXT,
    )
    assert result == result.__class__("firing 2 api 2026-11-26 18:45:30 CST critical", None)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ alerts.__class__.__init__.__globals__ }}",
        "{{ status.format.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'] }}",
        "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_the_sandbox_refuses_python_internals(source: str) -> None:
    result = render_template(source, CONTEXT)
    assert result.text is None
    assert result.error is not None and result.error.startswith("template error")


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 100000000 }}",
        "{{ [1] * 100000000 }}",
        "{{ 10 ** 1000000 }}",
        "{% for i in range(10000000) %}x{% endfor %}",
        # prints nothing, so the output cap would never stop it: 10^10 iterations
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    ],
)
def test_resource_bombs_are_refused(source: str) -> None:
    result = render_template(source, CONTEXT)
    assert result.text is None
    assert result.error is not None


def test_the_range_budget_is_per_rendering() -> None:
    source = "{% for i in range(150000) %}{% endfor %}ok"
    assert render_template(source, CONTEXT).text == "ok"
    assert render_template(source, CONTEXT).text == "ok"  # the budget starts anew


def test_output_is_capped() -> None:
    result = render_template("{% for i in range(100000) %}0123456789{% endfor %}", CONTEXT)
    assert result.text is None
    assert result.error == f"the template's output is longer than {MAX_TEMPLATE_OUTPUT} bytes"
    small = render_template("{{ 'abc' }}", CONTEXT, max_bytes=2)
    assert small.text is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ nosuchname }}", "'nosuchname' is undefined"),
        ("{% if %}", "TemplateSyntaxError"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("   ", "the template produced no text"),
    ],
)
def test_errors_are_returned_with_their_reason(source: str, expected: str) -> None:
    result = render_template(source, CONTEXT)
    assert result.text is None
    assert result.error is not None and expected in result.error


def test_html_mode_escapes_values() -> None:
    context = {"x": "<script>alert(1)</script>"}
    assert render_template("<b>{{ x }}</b>", context, html=True).text == (
        "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>"
    )
    assert render_template("{{ x }}", context).text == "<script>alert(1)</script>"


@pytest.mark.parametrize(
    "source",
    [
        '{{ "%99999999d" % 1 }}',
        '{{ "%.99999999f" % 1 }}',
        '{{ "%*d" % (99999999, 1) }}',
        '{{ "%99999999d"|format(1) }}',
        '{{ "{:99999999}".format(1) }}',
        '{{ "{:>{w}}".format(1, w=99999999) }}',
        '{{ "{x:99999999}".format_map({"x": 1}) }}',
        '{{ "x".center(99999999) }}',
        '{{ "x"|center(99999999) }}',
        '{{ "x".ljust(99999999) }}',
    ],
)
def test_format_widths_cannot_build_huge_strings(source: str) -> None:
    result = render_template(source, CONTEXT)
    assert result.text is None
    assert result.error is not None and "refused" in result.error


def test_ordinary_formatting_still_works() -> None:
    source = '{{ "%5.1f|%-3s" % (1.25, "a") }} {{ "{:>4}".format("b") }} {{ "c"|center(5) }}'
    assert render_template(source, CONTEXT).text == '1.2|a      b   c'


def test_a_rendering_past_its_time_budget_is_stopped() -> None:
    import time
    big = "x" * 100000  # within the '*' cap; 10^10 empty iterations
    source = ("{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}"
              "{% endfor %}done")
    started = time.monotonic()
    result = render_template(source, CONTEXT, max_seconds=0.3)
    assert time.monotonic() - started < 2.0
    assert result.text is None and result.error is not None and "time" in result.error
    assert big  # (the string itself is fine)
