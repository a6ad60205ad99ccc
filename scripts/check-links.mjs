#!/usr/bin/env node
// Checks that every relative link of the documentation resolves: the file or folder it names exists
// in the repository, and its `#anchor`, if any, is a heading of the Markdown file it points to (as
// GitHub makes anchors from headings) or an HTML `id` / `name` there.
//
//   node scripts/check-links.mjs [files.md...]
//
// By default: README.md, CHANGELOG.md, CONTRIBUTING.md, SECURITY.md, docs/**/*.md and sample/README.md.
// - Links: inline `[text](target)` and `![alt](target)`, reference definitions `[label]: target`, and
//   HTML `href="..."` / `src="..."`. Links with a scheme (https:, mailto:) are not checked, nor is
//   anything inside fenced code blocks or inline code.
// - A target is relative to the file that links to it; one starting with `/` is relative to the
//   repository's root. A folder counts as existing; its anchors are those of its README.md.
// - Anchors are compared with GitHub's heading slugs: the heading's text (code spans, links and
//   emphasis rendered as text), lower-cased, every character that is no letter, digit, mark, `_`,
//   `-` or space removed, spaces turned into `-`; a repeated slug gets `-1`, `-2`... Anchors into
//   files other than Markdown (`file.ts#L10`) are not checked.
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// ---- Markdown, as far as links need it -----------------------------------------------------------

const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;

/**
 * The text blocks of a Markdown file outside fenced code: each a run of lines with the line number
 * of its first, and the headings with their line numbers.
 */
export function parse(text) {
  const lines = text.split(/\r?\n/);
  const blocks = [];
  const headings = [];
  let fence = null;
  let block = null;
  const close = () => {
    if (block) blocks.push(block);
    block = null;
  };
  lines.forEach((line, index) => {
    const number = index + 1;
    if (fence) {
      const end = FENCE.exec(line.trimStart());
      if (end && end[1][0] === fence.char && end[1].length >= fence.length && end[2].trim() === '') fence = null;
      return;
    }
    // A fence may sit in a list item, indented further than a top-level one.
    const open = FENCE.exec(line.trimStart());
    if (open && !(open[1][0] === '`' && open[2].includes('`'))) {
      close();
      fence = { char: open[1][0], length: open[1].length };
      return;
    }
    if (line.trim() === '') {
      close();
      return;
    }
    const atx = ATX.exec(line);
    if (atx) {
      close();
      headings.push({ text: atx[2] ?? '', line: number });
      blocks.push({ line: number, text: atx[2] ?? '' });
      return;
    }
    const setext = SETEXT.exec(line);
    if (setext && block && block.lines === 1 && !/^\s*([-*+>|]|\d+[.)])\s/.test(block.text)) {
      headings.push({ text: block.text.trim(), line: block.line });
      close();
      return;
    }
    if (block) {
      block.text += `\n${line}`;
      block.lines++;
    } else {
      block = { line: number, text: line, lines: 1 };
    }
  });
  close();
  return { blocks, headings };
}

/** `text` with its code spans blanked out (same length, newlines kept), so nothing inside them is read as a link. */
export function withoutCode(text) {
  return text.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (span) => span.replace(/[^\n]/g, ' '));
}

/** The text GitHub shows for a heading's Markdown: code spans as their content, links as their text, no emphasis or HTML. */
export function headingText(markdown) {
  const parts = markdown.split(/(`+)([\s\S]*?[^`])\1(?!`)/);
  let text = '';
  for (let i = 0; i < parts.length; i += 3) {
    text += parts[i]
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/!?\[([^\]]*)\]\[[^\]]*\]/g, '$1')
      .replace(/<[^>]+>/g, '')
      .replace(/\\([!-/:-@[-`{-~])/g, '$1')
      .replace(/(\*+|(?<![\p{L}\p{N}])_+|_+(?![\p{L}\p{N}]))/gu, '');
    if (i + 2 < parts.length) text += parts[i + 2].replace(/^ (.*) $/, '$1');
  }
  return text.trim();
}

/** GitHub's anchor for a heading's text (github-slugger). */
export function slug(text) {
  return text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Every anchor a Markdown file offers: its headings' slugs (repeats numbered) and HTML ids and names. */
export function anchorsOf(text) {
  const { headings } = parse(text);
  const anchors = new Set();
  // As github-slugger numbers them: a slug already taken gets the next free `-n` of its base.
  const occurrences = new Map();
  for (const heading of headings) {
    const base = slug(headingText(heading.text));
    let anchor = base;
    while (occurrences.has(anchor)) {
      occurrences.set(base, occurrences.get(base) + 1);
      anchor = `${base}-${occurrences.get(base)}`;
    }
    occurrences.set(anchor, 0);
    anchors.add(anchor);
  }
  for (const match of withoutCodeBlocks(text).matchAll(/<[a-z][^>]*?\s(?:id|name)\s*=\s*["']([^"']+)["']/gi)) anchors.add(match[1]);
  return anchors;
}

function withoutCodeBlocks(text) {
  return parse(text).blocks.map((block) => withoutCode(block.text)).join('\n\n');
}

/** The link targets of a Markdown file, each with the line it is on. */
export function linksOf(text) {
  const links = [];
  for (const block of parse(text).blocks) {
    const plain = withoutCode(block.text);
    const lineAt = (offset) => block.line + (plain.slice(0, offset).match(/\n/g)?.length ?? 0);
    // Inline links and images: the text in brackets (nested brackets allowed), then the destination.
    for (const match of plain.matchAll(/(?<!\\)\]\(/g)) {
      const target = destination(plain, match.index + 2);
      if (target !== null) links.push({ target, line: lineAt(match.index) });
    }
    for (const match of plain.matchAll(/^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)/gm)) {
      links.push({ target: match[1].replace(/^<(.*)>$/, '$1'), line: lineAt(match.index) });
    }
    for (const match of plain.matchAll(/<[a-z][^>]*?\s(?:href|src)\s*=\s*["']([^"']*)["']/gi)) {
      links.push({ target: match[1], line: lineAt(match.index) });
    }
  }
  return links;
}

/** The destination of an inline link that starts at `start` (just after `](`), or null if there is none. */
function destination(text, start) {
  let i = start;
  while (text[i] === ' ' || text[i] === '\t' || text[i] === '\n') i++;
  if (text[i] === '<') {
    const end = text.indexOf('>', i);
    return end < 0 ? null : text.slice(i + 1, end);
  }
  let depth = 0;
  let j = i;
  for (; j < text.length; j++) {
    const c = text[j];
    if (c === '\\') {
      j++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n') break;
    if (c === '(') depth++;
    else if (c === ')') {
      if (depth === 0) break;
      depth--;
    }
  }
  return j > i ? text.slice(i, j) : null;
}

// ---- the check -------------------------------------------------------------------------------------

function defaultFiles() {
  const found = ['README.md', 'CHANGELOG.md', 'CONTRIBUTING.md', 'SECURITY.md'].map((name) => join(root, name));
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) found.push(path);
    }
  };
  walk(join(root, 'docs'));
  found.push(join(root, 'sample', 'README.md'));
  return found.filter((path) => existsSync(path));
}

const anchorCache = new Map();
function anchorsIn(path) {
  if (!anchorCache.has(path)) anchorCache.set(path, anchorsOf(readFileSync(path, 'utf8')));
  return anchorCache.get(path);
}

const rel = (path) => relative(root, path).split(sep).join('/');

/** What is wrong with one link of `from`, or null when it resolves. */
function problem(from, target) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return null; // another site, mailto:...
  const hash = target.indexOf('#');
  const rawPath = hash < 0 ? target : target.slice(0, hash);
  const rawAnchor = hash < 0 ? null : target.slice(hash + 1);
  let path;
  let anchor;
  try {
    path = decodeURIComponent(rawPath.replace(/\?.*$/, ''));
    anchor = rawAnchor === null ? null : decodeURIComponent(rawAnchor);
  } catch {
    return 'is not valid percent-encoding';
  }
  const file = path === '' ? from : path.startsWith('/') ? join(root, path) : resolve(dirname(from), path);
  if (file !== root && !file.startsWith(root + sep)) return 'points outside the repository';
  if (!existsSync(file)) return `${rel(file)} does not exist`;
  if (anchor === null || anchor === '') return null;
  let page = file;
  if (statSync(file).isDirectory()) {
    page = join(file, 'README.md');
    if (!existsSync(page)) return `${rel(file)}/ has no README.md for #${anchor}`;
  }
  if (extname(page).toLowerCase() !== '.md') return null;
  return anchorsIn(page).has(anchor) ? null : `${rel(page)} has no heading #${anchor}`;
}

function main() {
  const args = process.argv.slice(2);
  if (args.includes('-h') || args.includes('--help')) {
    console.log('usage: node scripts/check-links.mjs [file.md...]');
    process.exit(0);
  }
  const files = args.length ? args.map((arg) => resolve(arg)) : defaultFiles();
  let checked = 0;
  const broken = [];
  for (const file of files) {
    if (!existsSync(file)) {
      broken.push(`${rel(file)}: no such file`);
      continue;
    }
    for (const link of linksOf(readFileSync(file, 'utf8'))) {
      checked++;
      const wrong = problem(file, link.target);
      if (wrong) broken.push(`${rel(file)}:${link.line}: (${link.target}) ${wrong}`);
    }
  }
  for (const line of broken) console.log(line);
  console.log(`links: ${checked - broken.length} resolved, ${broken.length} broken (${files.length} files)`);
  process.exit(broken.length ? 1 : 0);
}

// Both paths real: a symlinked checkout must not skip the check silently.
const real = (path) => (existsSync(path) ? realpathSync(path) : path);
if (process.argv[1] && real(resolve(process.argv[1])) === real(fileURLToPath(import.meta.url))) main();
