#!/usr/bin/env python3
"""Import cycles between the files of a crate: `.ci/import-cycles.py host/src`.

An edge A -> B when file A names an item defined in file B: by a `use` item, an inline
`crate::`/`super::`/`self::` path, a `module::item` path through an imported or child module,
or a name A itself re-exports and uses. Re-exports (`pub use`) are followed to the file that
defines the item and are not edges by themselves; a module's inline `#[cfg(test)] mod tests`
is left out. Prints every strongly connected component of more than one file (with its edges)
and exits 1 if there is one. With `--modules`, also prints the graph of top-level modules.
"""
import os
import re
import sys


def module_path(rel):
    parts = rel[:-3].split(os.sep)
    if parts == ['lib']:
        return ('crate',)
    if parts == ['main']:
        return None
    if parts[-1] == 'mod':
        parts = parts[:-1]
    return ('crate',) + tuple(parts)


def strip(text):
    """Code without comments, string contents, raw strings and the inline test module."""
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    lines = []
    for line in text.split('\n'):
        if line.lstrip().startswith('//'):
            continue
        line = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
        cut = line.find('//')
        lines.append(line if cut < 0 else line[:cut])
    text = '\n'.join(lines)
    text = re.sub(r'r#".*?"#', '""', text, flags=re.S)
    tests = text.find('#[cfg(test)]\nmod tests {')
    return text if tests < 0 else text[:tests]


def expand(tree):
    """`a::{b, c::{d, self}}` -> [`a::b`, `a::c::d`, `a::c`] (`x as y` keeps `x`)."""
    tree = re.sub(r'\s+as\s+\w+', '', tree)
    tree = re.sub(r'\s+', '', tree)

    def split_top(s):
        depth, cur, out = 0, '', []
        for ch in s:
            depth += ch == '{'
            depth -= ch == '}'
            if ch == ',' and depth == 0:
                out.append(cur)
                cur = ''
            else:
                cur += ch
        return out + ([cur] if cur else [])

    def rec(prefix, s):
        i = s.find('{')
        if i < 0:
            return [prefix + s]
        head, inner = s[:i], s[i + 1:s.rfind('}')]
        out = []
        for part in split_top(inner):
            if part == 'self':
                out.append((prefix + head).rstrip(':'))
            else:
                out.extend(rec(prefix + head, part))
        return out

    return rec('', tree)


def main(argv):
    root = argv[1]
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith('.rs'):
                p = os.path.join(d, n)
                files[os.path.relpath(p, root)] = open(p, encoding='utf-8').read()
    modules = {m: rel for rel in files if (m := module_path(rel))}

    def absolute(m, path):
        segs = [s for s in path.split('::') if s]
        if not segs:
            return None
        if segs[0] == 'crate':
            return tuple(segs)
        if segs[0] == 'super':
            cur = list(m)
            while segs and segs[0] == 'super':
                cur, segs = cur[:-1], segs[1:]
            return tuple(cur + segs)
        if segs[0] == 'self':
            return tuple(list(m) + segs[1:])
        if tuple(list(m) + [segs[0]]) in modules:
            return tuple(list(m) + segs)
        return None

    item = re.compile(r'^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+|unsafe\s+|const\s+)*'
                      r'(?:fn|struct|enum|trait|type|const|static|union|macro_rules!)\s+(\w+)', re.M)
    use_item = re.compile(r'^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);', re.M)
    defs, reexports, named = {}, {}, {}
    for rel, text in files.items():
        m = module_path(rel)
        if m is None:
            continue
        code = strip(text)
        defs[m] = set(item.findall(code))
        reexports[m], paths, aliases = {}, [], {}
        for found in use_item.finditer(code):
            for p in expand(found.group(2)):
                a = absolute(m, p)
                if a is None:
                    continue
                if found.group(1):
                    reexports[m][a[-1]] = a
                else:
                    paths.append(a)
                    aliases[a[-1]] = a
        body = use_item.sub('', code)
        for name, target in reexports[m].items():
            if re.search(r'(?<![:\w])' + re.escape(name) + r'\b', body):
                paths.append(target)
        for found in re.finditer(r'\b((?:crate|super|self)(?:::\w+)+)', body):
            if (a := absolute(m, found.group(1))):
                paths.append(a)
        for found in re.finditer(r'(?<![:\w])(\w+)((?:::\w+)+)', body):
            head, rest = found.group(1), tuple(found.group(2).split('::')[1:])
            if head in ('crate', 'super', 'self', 'Self', 'std', 'core'):
                continue
            if head in aliases and aliases[head] in modules:
                paths.append(aliases[head] + rest)
            elif tuple(list(m) + [head]) in modules:
                paths.append(tuple(list(m) + [head]) + rest)
        named[rel] = paths

    def resolve(path, depth=0):
        if depth > 10:
            return None
        cur, segs = ('crate',), list(path[1:])
        while segs:
            nxt = cur + (segs[0],)
            if nxt in modules:
                cur, segs = nxt, segs[1:]
                continue
            if segs[0] in defs.get(cur, ()):
                return modules[cur]
            if segs[0] in reexports.get(cur, {}):
                return resolve(reexports[cur][segs[0]] + tuple(segs[1:]), depth + 1)
            return modules.get(cur)
        return modules.get(cur)

    edges = {rel: set() for rel in named}
    for rel, paths in named.items():
        for p in paths:
            target = resolve(p) if p[0] == 'crate' else None
            if target and target != rel and target in edges:
                edges[rel].add(target)

    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    cycles = sorted((c for c in comps if len(c) > 1), key=len, reverse=True)
    print(f'{root}: {len(cycles)} import cycle(s) between files')
    for c in cycles:
        print(f'  {len(c)} files: ' + ' '.join(c))
        for a in c:
            print(f'    {a} -> ' + ' '.join(sorted(e for e in edges[a] if e in c)))
    if '--modules' in argv:
        top = lambda rel: rel.split(os.sep)[0].removesuffix('.rs')
        graph = {}
        for a, bs in edges.items():
            for b in bs:
                if top(a) != top(b):
                    graph.setdefault(top(a), set()).add(top(b))
        for a in sorted(graph):
            print(f'  module {a} -> ' + ' '.join(sorted(graph[a])))
    return 1 if cycles else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
