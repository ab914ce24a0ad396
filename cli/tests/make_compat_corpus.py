#!/usr/bin/env python3
# Writes tests/compat/: pairs of manifests, each the example system's changed in one way.
#   cargo run -p example-api --features schema --bin manifest > /tmp/manifest.json
#   python3 cli/tests/make_compat_corpus.py /tmp/manifest.json cli/tests/compat
#   for d in cli/tests/compat/*/; do target/debug/intercall compat $d/old.json $d/new.json > $d/expected.txt; done
# then READ every expected.txt: it is the classification the test holds the CLI to.
# (Cases 14-16, 30 and 31 are small hand-written services; every other is the example
# system's manifest changed in one way.)
import json, copy, os, sys
base = json.load(open(sys.argv[1]))
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in ('description', 'docs', '$schema', 'title')}
    if isinstance(v, list): return [strip(x) for x in v]
    return v
base = strip(base)
def svc(m, name): return next(s for s in m['services'] if s['name'] == name)
def meth(m, s, name): return next(x for x in svc(m, s)['methods'] if x['name'] == name)
def only(*names):
    m = copy.deepcopy(base); m['services'] = [s for s in m['services'] if s['name'] in names]; return m
def no_schemas(m):
    def rm(v):
        if isinstance(v, dict):
            v.pop('schema', None)
            for x in v.values(): rm(x)
        elif isinstance(v, list):
            for x in v: rm(x)
    rm(m); return m
def each_schema(m, fn):
    for s in m['services']:
        for me in s['methods']:
            for t in [a for a in me['arguments']] + [me['result'], me['error']]:
                if t.get('schema') is not None: fn(t)
def product_schemas(m):
    """Every Product schema (inline or in $defs)."""
    out = []
    def walk(v):
        if isinstance(v, dict):
            if v.get('type') == 'object' and 'price_cents' in v.get('properties', {}): out.append(v)
            for x in v.values(): walk(x)
        elif isinstance(v, list):
            for x in v: walk(x)
    walk(m); return out
def find_all(m, pred):
    out = []
    def walk(v):
        if isinstance(v, dict):
            if pred(v): out.append(v)
            for x in v.values(): walk(x)
        elif isinstance(v, list):
            for x in v: walk(x)
    walk(m); return out
cases = []
def case(name, old, new): cases.append((name, old, new))

c = only('Catalog'); case('identical', c, copy.deepcopy(c))
o = only('Catalog'); n = copy.deepcopy(o)
nm = copy.deepcopy(meth(n, 'Catalog', 'get')); nm['name'] = 'find'; svc(n, 'Catalog')['methods'].append(nm)
case('method-added', o, n)
o = only('Catalog'); n = copy.deepcopy(o); svc(n, 'Catalog')['methods'] = [x for x in svc(n, 'Catalog')['methods'] if x['name'] != 'delete']
case('method-removed', o, n)
o = only('Catalog', 'Checkout'); n = only('Catalog'); case('service-removed', o, n)
o = only('Catalog'); n = only('Catalog', 'Checkout'); case('service-added', o, n)
o = only('Catalog'); n = copy.deepcopy(o)
meth(n, 'Catalog', 'get')['arguments'].append({'name': 'warehouse', 'required': True, 'rust_type': 'String', 'schema': {'type': 'string'}})
case('required-argument-added', o, n)
o = only('Catalog'); n = copy.deepcopy(o)
meth(n, 'Catalog', 'get')['arguments'].append({'name': 'warehouse', 'required': False, 'rust_type': 'Option<String>', 'schema': {'type': ['string', 'null']}})
case('optional-argument-added', o, n)
o = only('Checkout'); n = copy.deepcopy(o); meth(n, 'Checkout', 'quote')['arguments'].pop()
case('argument-removed', o, n)
o = only('Checkout'); n = copy.deepcopy(o); a = meth(n, 'Checkout', 'quote')['arguments'][1]
a.update({'required': True, 'rust_type': 'String', 'schema': {'type': 'string'}})
case('argument-became-required', o, n)
case('argument-became-optional', n, o)
def add_variant(m, enum_name_field, variant, open_marker=None):
    for s in find_all(m, lambda v: isinstance(v.get('oneOf'), list) and any(enum_name_field in (alt.get('properties') or {}) for alt in v['oneOf'])):
        s['oneOf'].append({'type': 'object', 'properties': {variant: {'type': 'string'}}, 'required': [variant], 'additionalProperties': False})
        if open_marker: s['x-intercall-unknown-variant'] = open_marker
o = only('Catalog'); n = copy.deepcopy(o); add_variant(n, 'NotFound', 'Gone')
case('error-variant-added', o, n)
o = only('Catalog')
for s in find_all(o, lambda v: isinstance(v.get('oneOf'), list) and any('NotFound' in (alt.get('properties') or {}) for alt in v['oneOf'])):
    s['oneOf'].append({'type': 'string', 'const': 'Unknown'}); s['x-intercall-unknown-variant'] = 'Unknown'
n = copy.deepcopy(o); add_variant(n, 'NotFound', 'Gone')
# Externally tagged (schemars' `{"Gone": ..}`): `#[serde(other)]` cannot skip the data.
case('data-variant-added-to-externally-tagged-open-enum', o, n)
o = only('Catalog'); n = copy.deepcopy(o)
for s in find_all(n, lambda v: isinstance(v.get('oneOf'), list) and any('NotFound' in (alt.get('properties') or {}) for alt in v['oneOf'])):
    s['oneOf'] = [alt for alt in s['oneOf'] if 'Invalid' not in (alt.get('properties') or {})]
case('error-variant-removed', o, n)
def priority(values):
    m = {'format': 1, 'services': [{'name': 'Tasks', 'methods': [{'name': 'add', 'arguments': [
        {'name': 'title', 'required': True, 'rust_type': 'String', 'schema': {'type': 'string'}},
        {'name': 'priority', 'required': True, 'rust_type': 'Priority', 'schema': {'type': 'string', 'enum': values}}],
        'result': {'rust_type': 'u64', 'schema': {'type': 'integer', 'format': 'uint64', 'minimum': 0}},
        'error': {'rust_type': 'TaskError', 'schema': {'oneOf': [{'type': 'string', 'const': 'Full'}]}}}]}]}
    return m
case('argument-enum-variant-removed', priority(['Low', 'Normal', 'High']), priority(['Low', 'High']))
case('argument-enum-variant-added', priority(['Low', 'High']), priority(['Low', 'Normal', 'High']))
def tasks_result(values):
    m = priority(['Low']); me = m['services'][0]['methods'][0]
    me['name'] = 'priority_of'; me['arguments'] = me['arguments'][:1]
    me['result'] = {'rust_type': 'Priority', 'schema': {'type': 'string', 'enum': values}}
    return m
case('result-enum-variant-added', tasks_result(['Low', 'High']), tasks_result(['Low', 'Normal', 'High']))
o = only('Catalog'); n = copy.deepcopy(o)
for p in product_schemas(n): p['properties']['stock'] = {'type': 'integer', 'format': 'uint32', 'minimum': 0}; p['required'].append('stock')
case('required-field-added-to-argument-and-result', o, n)
o = only('Catalog'); n = copy.deepcopy(o)
for p in product_schemas(n): p['properties']['colour'] = {'type': ['string', 'null']}
case('optional-field-added', o, n)
o = only('Catalog'); n = copy.deepcopy(o)
for p in product_schemas(n): del p['properties']['tags']; p['required'].remove('tags')
case('required-field-removed', o, n)
o = only('Checkout')
lines = find_all(o, lambda v: v.get('type') == 'object' and 'product_id' in v.get('properties', {}))
for l in lines: l['required'].remove('quantity')
n = only('Checkout')
case('field-became-required', o, n)
o = only('Catalog'); n = copy.deepcopy(o)
for p in product_schemas(n): p['properties']['price_cents'] = {'type': 'string'}
case('field-type-changed', o, n)
o = only('Checkout'); n = copy.deepcopy(o)
for v in find_all(n, lambda v: v.get('format') == 'uint32'): v['format'] = 'uint64'
case('integer-widened', o, n)
o = no_schemas(only('Catalog')); n = copy.deepcopy(o); meth(n, 'Catalog', 'get')['arguments'][0]['rust_type'] = 'u64'
case('no-schema-type-changed', o, n)
o = no_schemas(only('Catalog')); n = copy.deepcopy(o)
nm = copy.deepcopy(meth(n, 'Catalog', 'get')); nm['name'] = 'find'; svc(n, 'Catalog')['methods'].append(nm)
case('no-schema-method-added', o, n)
o = only('Catalog')
for p in product_schemas(o): p['additionalProperties'] = False
n = copy.deepcopy(o)
for p in product_schemas(n): p['properties']['colour'] = {'type': ['string', 'null']}
case('field-added-to-deny-unknown-fields-type', o, n)
o = only('Catalog'); n = copy.deepcopy(o)
for me in svc(n, 'Catalog')['methods']:
    for t in me['arguments'] + [me['result']]:
        if t['rust_type'] == 'Product': t['rust_type'] = 'Item'
case('rust-type-renamed-same-json', o, n)
o = only('Catalog')
for s in find_all(o, lambda v: isinstance(v.get('oneOf'), list) and any('NotFound' in (alt.get('properties') or {}) for alt in v['oneOf'])):
    s['x-intercall-unknown-variant'] = 'Unknown'   # declared, but old readers have no such variant
n = copy.deepcopy(o); add_variant(n, 'NotFound', 'Gone')
case('open-enum-without-its-catch-all-variant', o, n)
o = only('Catalog'); n = copy.deepcopy(o); meth(n, 'Catalog', 'get')['stream'] = True
case('reply-became-a-stream', o, n)
# A unit variant (a string) is what an externally tagged catch-all can take.
o = only('Catalog')
for s in find_all(o, lambda v: isinstance(v.get('oneOf'), list) and any('NotFound' in (alt.get('properties') or {}) for alt in v['oneOf'])):
    s['oneOf'].append({'type': 'string', 'const': 'Unknown'}); s['x-intercall-unknown-variant'] = 'Unknown'
n = copy.deepcopy(o)
for s in find_all(n, lambda v: isinstance(v.get('oneOf'), list) and any('NotFound' in (alt.get('properties') or {}) for alt in v['oneOf'])):
    s['oneOf'].append({'type': 'string', 'const': 'Gone'})
case('unit-variant-added-to-externally-tagged-open-enum', o, n)
# Internally tagged, `#[serde(tag = "kind")]`, as schemars writes it: every variant an
# object whose `kind` is a const. A variant with data is caught by `#[serde(other)]`.
def tagged_error(variants):
    def variant(name, fields):
        props = {'kind': {'type': 'string', 'const': name}}; props.update(fields)
        return {'type': 'object', 'properties': props, 'required': ['kind'] + sorted(fields)}
    return {'rust_type': 'ShelfError', 'schema': {'x-intercall-unknown-variant': 'Unknown',
        'oneOf': [variant(name, fields) for name, fields in variants]}}
def shelf(variants):
    return {'format': 1, 'services': [{'name': 'Shelf', 'methods': [{'name': 'take',
        'arguments': [{'name': 'id', 'required': True, 'rust_type': 'String', 'schema': {'type': 'string'}}],
        'result': {'rust_type': 'String', 'schema': {'type': 'string'}}, 'error': tagged_error(variants)}]}]}
# (With two data variants of different fields: one whose only data variant has one
# field reads as adjacently tagged, `{"kind": .., "data": ..}`, which cannot skip data.)
known = [('NotFound', {'id': {'type': 'string'}}), ('Invalid', {'reason': {'type': 'string'}}), ('Unknown', {})]
case('data-variant-added-to-internally-tagged-open-enum', shelf(known), shelf(known[:2] + [('Gone', {'since': {'type': 'string'}})] + known[2:]))
# Adjacently tagged, `#[serde(tag = "kind", content = "data")]`: `#[serde(other)]` reads
# the content as a unit, so only a unit variant is caught.
def adjacent(variants):
    def variant(name, data):
        props = {'kind': {'type': 'string', 'const': name}}
        if data is not None: props['data'] = data
        return {'type': 'object', 'properties': props, 'required': ['kind'] + (['data'] if data is not None else [])}
    m = shelf([]); m['services'][0]['methods'][0]['error']['schema']['oneOf'] = [variant(n, d) for n, d in variants]
    return m
known = [('NotFound', {'type': 'object', 'properties': {'id': {'type': 'string'}}, 'required': ['id']}), ('Unknown', None)]
case('data-variant-added-to-adjacently-tagged-open-enum', adjacent(known), adjacent(known[:1] + [('Gone', {'type': 'string'}), ('Moved', None)] + known[1:]))
# A data enum's schema is a bare `oneOf` (no `type`): one that becomes a string.
o = only('Checkout'); n = copy.deepcopy(o)
meth(n, 'Checkout', 'fulfil')['result'] = {'rust_type': 'String', 'schema': {'type': 'string'}}
case('stream-item-data-enum-became-string', o, n)
# `Option<Enum>` is `anyOf: [{"$ref": Enum}, {"type": "null"}]`: one that becomes `Option<String>`.
o = only('Checkout'); n = copy.deepcopy(o)
fulfilment = {k: v for k, v in meth(o, 'Checkout', 'fulfil')['result']['schema'].items() if k != '$defs'}
meth(o, 'Checkout', 'place_order')['result'] = {'rust_type': 'Option<Fulfilment>', 'schema': {
    'anyOf': [{'$ref': '#/$defs/Fulfilment'}, {'type': 'null'}], '$defs': {'Fulfilment': fulfilment}}}
meth(n, 'Checkout', 'place_order')['result'] = {'rust_type': 'Option<String>', 'schema': {'type': ['string', 'null']}}
case('optional-data-enum-became-optional-string', o, n)
out = sys.argv[2]
for i, (name, old, new) in enumerate(cases, 1):
    d = os.path.join(out, f'{i:02}-{name}'); os.makedirs(d, exist_ok=True)
    json.dump(old, open(os.path.join(d, 'old.json'), 'w'), sort_keys=True)
    json.dump(new, open(os.path.join(d, 'new.json'), 'w'), sort_keys=True)
print(len(cases))
