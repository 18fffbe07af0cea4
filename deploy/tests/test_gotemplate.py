"""The Go-template subset of deploy/tools/gotemplate.py: each construct the
chart uses renders as Helm would, and what Helm refuses is refused."""

import unittest

from common import gotemplate

T = gotemplate


def run(src: str, values=None, defines: str = "") -> str:
    e = T.Engine()
    if defines:
        e.add("_helpers.tpl", defines)
    e.add("t", src)
    return e.render("t", {"Values": values or {}, "Release": {"Name": "rel"}})


class Rendering(unittest.TestCase):
    def check(self, src, want, values=None, defines=""):
        self.assertEqual(run(src, values, defines), want, src)

    def test_text_fields_and_trimming(self):
        self.check("a {{ .Values.x }} b", "a 1 b", {"x": 1})
        self.check("a\n  {{- .Values.x }}\nb", "a1\nb", {"x": "1"})
        self.check("a {{ .Values.x -}}\n\n  b", "a 1b", {"x": 1})
        self.check("{{/* a comment */}}x", "x")
        self.check("{{- /* trimmed comment */ -}}\n x", "x")
        self.check("{{ .Values.missing }}|", "|")
        self.check('{{ "a\\"b" }} {{ `raw\\n` }} {{ 3 }} {{ true }}', 'a"b raw\\n 3 true')

    def test_helm_prints_value_numbers_as_go_floats(self):
        # Helm reads values numbers as float64: a million prints as 1e+06,
        # which is why the chart converts with int64.
        self.check("{{ .Values.n }} {{ int64 .Values.n }}", "1e+06 1000000", {"n": 1e6})
        self.check("{{ .Values.n }}", "2.68435456e+08", {"n": 268435456.0})
        self.check("{{ .Values.n }} {{ .Values.h }}", "3 0.5", {"n": 3.0, "h": 0.5})

    def test_conditionals(self):
        src = "{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}"
        self.check(src, "A", {"a": 1, "b": 1})
        self.check(src, "B", {"a": 0, "b": "x"})
        self.check(src, "C", {"a": "", "b": []})
        self.check("{{ if and .Values.a (not .Values.b) }}y{{ end }}", "y", {"a": True, "b": {}})
        self.check('{{ if or (eq .Values.k "x") (eq .Values.k "y") }}in{{ end }}', "in", {"k": "y"})
        self.check("{{ if gt (int64 .Values.r) 1 }}many{{ end }}", "many", {"r": 3.0})

    def test_range_and_with(self):
        self.check("{{ range .Values.l }}[{{ . }}]{{ end }}", "[a][b]", {"l": ["a", "b"]})
        self.check("{{ range $i, $v := .Values.l }}{{ $i }}={{ $v }};{{ end }}", "0=a;1=b;", {"l": ["a", "b"]})
        self.check("{{ range $k, $v := .Values.m }}{{ $k }}:{{ $v }} {{ end }}", "a:1 b:2 ", {"m": {"b": 2, "a": 1}})
        self.check("{{ range .Values.l }}x{{ else }}none{{ end }}", "none", {"l": []})
        self.check("{{ with .Values.m }}{{ .a }}{{ else }}no{{ end }}", "1", {"m": {"a": 1}})
        self.check("{{ with .Values.m }}{{ .a }}{{ else }}no{{ end }}", "no", {"m": {}})
        # $ is the root inside range and with
        self.check("{{ range .Values.l }}{{ $.Release.Name }}-{{ . }} {{ end }}", "rel-a rel-b ", {"l": ["a", "b"]})

    def test_variables_scope(self):
        self.check("{{ $x := .Values.a }}{{ if true }}{{ $x }}{{ end }}", "1", {"a": 1})
        with self.assertRaisesRegex(T.TemplateError, "undefined variable"):
            run("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}")

    def test_define_include_and_pipelines(self):
        defines = '{{- define "name" -}}{{ .Release.Name }}-x{{- end -}}\n{{- define "kv" -}}a: 1\nb: 2{{- end -}}'
        self.check('{{ include "name" . }}', "rel-x", defines=defines)
        self.check('m:{{- include "kv" . | nindent 2 }}', "m:\n  a: 1\n  b: 2", defines=defines)
        self.check('{{ include "name" . | quote }}', '"rel-x"', defines=defines)
        self.check('{{ printf "%s-%d" "a" 3 | trunc 3 }}', "a-3")
        self.check('{{ "abc-" | trimSuffix "-" }}', "abc")
        self.check('{{ default "d" .Values.x }} {{ default "d" .Values.y }}', "d v", {"x": "", "y": "v"})
        self.check('{{ join "," .Values.l }}', "a,b", {"l": ["a", "b"]})
        self.check("{{ add 1 2 (int64 .Values.n) }}", "6", {"n": 3.0})
        self.check('{{ $d := dict "a" 1 "b" "x" }}{{ $d.b }}', "x")
        self.check('{{ regexMatch "^[a-z]+$" "abc" }} {{ regexMatch "^[a-z]+$" "aB" }}', "true false")

    def test_to_yaml(self):
        self.check("{{ toYaml .Values.m }}", "a: 1\nb:\n- x", {"m": {"b": ["x"], "a": 1.0}})
        self.check("x:\n  {{- toYaml .Values.m | nindent 2 }}", "x:\n  k: v", {"m": {"k": "v"}})
        self.check("{{ toYaml .Values.m }}", "{}", {"m": {}})


class Refusals(unittest.TestCase):
    """What Go templates or Helm refuse must fail here too."""

    def test_field_of_a_missing_value(self):
        with self.assertRaisesRegex(T.TemplateError, "nil pointer"):
            run("{{ .Values.a.b }}", {})

    def test_int_float_comparison(self):
        with self.assertRaisesRegex(T.TemplateError, "incompatible types"):
            run("{{ if gt .Values.r 1 }}x{{ end }}", {"r": 3.0})
        with self.assertRaisesRegex(T.TemplateError, "incompatible types"):
            run('{{ if eq .Values.r "3" }}x{{ end }}', {"r": 3.0})

    def test_printf_d_of_a_float(self):
        with self.assertRaisesRegex(T.TemplateError, "%d"):
            run('{{ printf "%d" .Values.r }}', {"r": 3.0})

    def test_required_and_fail(self):
        with self.assertRaisesRegex(T.FailError, "need x"):
            run('{{ required "need x" .Values.x }}', {"x": ""})
        self.assertEqual(run('{{ required "need x" .Values.x }}', {"x": "v"}), "v")
        with self.assertRaisesRegex(T.FailError, "stop"):
            run('{{ fail "stop" }}')

    def test_outside_the_subset(self):
        for src in ['{{ template "x" . }}', "{{ unknownFn 1 }}", "{{ $x := 1 }}{{ $x = 2 }}", "{{ if true }}x"]:
            with self.assertRaises(T.TemplateError, msg=src):
                run(src)
        with self.assertRaisesRegex(T.TemplateError, "no template"):
            run('{{ include "nope" . }}')


if __name__ == "__main__":
    unittest.main()
