/**
 * Dump listings in the editor: the `kadi-dump:` read-only documents (a set's db.toc), outline,
 * folding and hovers for the `pg-toc-listing` language, editable copies with presets, and
 * "Restore from Listing", which validates an edited copy against the dump before handing it on.
 */
import * as vscode from 'vscode';
import type { HostProfile } from '../config/types';
import { parseListing, validateAgainst, type TocListing } from '../pgtoc/listing';
import { readToc } from '../transfer/readToc';
import type { CommandDeps } from './backupCommands';
import { pickSet } from './backupCommands';
import { nodeArg, uriArg } from './commandArgs';
import {
  describeProblems,
  DUMP_SCHEME,
  editableCopy,
  findOrigin,
  foldingRanges,
  hoverAt,
  LISTING_LANGUAGE,
  listingPath,
  listingSymbols,
  parseListingPath,
  problemSummary,
  tablesWithData,
  type ListingOrigin,
  type ListingSymbol,
  type SymbolKindName,
} from './dumpListingModel';

/** Hands a validated listing to the restore core (injected; the restore UI wires the real one). */
export type RestoreFromListing = (profile: HostProfile, set: string, listingText: string) => Promise<void>;


export interface ListingDeps extends CommandDeps {
  restoreFromListing: RestoreFromListing;
}

const SELECTOR: vscode.DocumentSelector = [{ language: LISTING_LANGUAGE }];

const SYMBOL_KINDS: Record<SymbolKindName, vscode.SymbolKind> = {
  namespace: vscode.SymbolKind.Namespace,
  class: vscode.SymbolKind.Class,
  interface: vscode.SymbolKind.Interface,
  variable: vscode.SymbolKind.Variable,
  key: vscode.SymbolKind.Key,
  field: vscode.SymbolKind.Field,
  event: vscode.SymbolKind.Event,
  array: vscode.SymbolKind.Array,
  function: vscode.SymbolKind.Function,
  object: vscode.SymbolKind.Object,
  module: vscode.SymbolKind.Module,
};

/** Parsed listings per document version, so outline, folding and hovers parse once per edit. */
class ParseCache {
  private readonly cache = new WeakMap<vscode.TextDocument, { version: number; listing: TocListing }>();
  get(doc: vscode.TextDocument): TocListing {
    const hit = this.cache.get(doc);
    if (hit && hit.version === doc.version) return hit.listing;
    const listing = parseListing(doc.getText());
    this.cache.set(doc, { version: doc.version, listing });
    return listing;
  }
}

class DumpListingDocuments implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  constructor(private readonly deps: ListingDeps) {}

  profileOf(o: ListingOrigin): HostProfile {
    const p = this.deps.tree.profiles().find((x) => x.name === o.host);
    if (!p) throw new Error(`No Kadi host named "${o.host}" is configured.`);
    return p;
  }

  /** The dump's original listing (cached: a set never changes once sealed). */
  async original(o: ListingOrigin): Promise<string> {
    const key = `${o.host}\n${o.set}`;
    const hit = this.texts.get(key);
    if (hit !== undefined) return hit;
    const host = await this.deps.pool.get(this.profileOf(o));
    const text = await readToc(host, o.set);
    this.texts.set(key, text);
    return text;
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const o = parseListingPath(uri.path);
    if (!o) throw new Error(`Not a dump listing: ${uri.toString()}`);
    return this.original(o);
  }
}

function toDocumentSymbol(doc: vscode.TextDocument, s: ListingSymbol): vscode.DocumentSymbol {
  const full = new vscode.Range(s.startLine, 0, s.endLine, doc.lineAt(Math.min(s.endLine, doc.lineCount - 1)).text.length);
  const sel = doc.lineAt(Math.min(s.line, doc.lineCount - 1)).range;
  const d = new vscode.DocumentSymbol(s.name, s.detail, SYMBOL_KINDS[s.kind], full.union(sel), sel);
  d.children = s.children.map((c) => toDocumentSymbol(doc, c));
  return d;
}

export function registerDumpListing(deps: ListingDeps): vscode.Disposable[] {
  const docs = new DumpListingDocuments(deps);
  const parsed = new ParseCache();
  const diagnostics = vscode.languages.createDiagnosticCollection('kadiOps.listing');

  const originOf = async (arg: unknown): Promise<ListingOrigin | undefined> => {
    const node = nodeArg(arg);
    const uri = uriArg(arg);
    if (uri?.scheme === DUMP_SCHEME) return parseListingPath(uri.path);
    if (!node) {
      const active = vscode.window.activeTextEditor?.document;
      if (active?.uri.scheme === DUMP_SCHEME) return parseListingPath(active.uri.path);
      if (active?.languageId === LISTING_LANGUAGE) {
        const o = findOrigin(active.getText());
        if (o) return o;
      }
    }
    const picked = await pickSet(deps, node);
    return picked ? { host: picked.profile.name, set: picked.set.name } : undefined;
  };

  const showListing = async (arg?: unknown): Promise<void> => {
    const o = await originOf(arg);
    if (!o) return;
    try {
      const uri = vscode.Uri.from({ scheme: DUMP_SCHEME, path: listingPath(o) });
      const doc = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: `Reading the dump listing of ${o.set}` }, () => vscode.workspace.openTextDocument(uri));
      await vscode.languages.setTextDocumentLanguage(doc, LISTING_LANGUAGE);
      await vscode.window.showTextDocument(doc, { preview: false });
    } catch (e) {
      void vscode.window.showErrorMessage(`${o.host}: ${(e as Error).message}`);
    }
  };

  const saveCopy = async (arg?: unknown): Promise<void> => {
    const o = await originOf(arg);
    if (!o) return;
    let listing: TocListing;
    try {
      listing = parseListing(await docs.original(o));
    } catch (e) {
      void vscode.window.showErrorMessage(`${o.host}: ${(e as Error).message}`);
      return;
    }
    const choice = await vscode.window.showQuickPick(
      [
        { label: 'Everything', description: 'the full listing', preset: 'full' as const },
        { label: 'Schema only', description: 'table data, sequence values and large objects commented out', preset: 'schema-only' as const },
        { label: 'Data of chosen tables…', description: 'only the TABLE DATA of the tables you pick', preset: 'tables' as const },
      ],
      { title: `Editable copy of the listing of ${o.set}`, placeHolder: 'Start from' },
    );
    if (!choice) return;
    let text: string;
    if (choice.preset === 'tables') {
      const tables = await vscode.window.showQuickPick(
        tablesWithData(listing).map((t) => ({ label: `${t.schema}.${t.name}`, description: t.desc === 'SEQUENCE SET' ? 'sequence value' : undefined, table: { schema: t.schema, name: t.name } })),
        { title: 'Tables whose data to restore', canPickMany: true, matchOnDescription: true },
      );
      if (!tables || tables.length === 0) return;
      text = editableCopy(listing, o, { kind: 'tables', tables: tables.map((t) => t.table) });
    } else text = editableCopy(listing, o, { kind: choice.preset });
    const doc = await vscode.workspace.openTextDocument({ content: text, language: LISTING_LANGUAGE });
    await vscode.window.showTextDocument(doc, { preview: false });
  };

  const restoreFromListing = async (arg?: unknown): Promise<void> => {
    // From the editor title the document's URI is passed; from the palette, the active editor counts.
    const doc = arg instanceof vscode.Uri ? vscode.workspace.textDocuments.find((d) => d.uri.toString() === arg.toString()) ?? (await vscode.workspace.openTextDocument(arg)) : vscode.window.activeTextEditor?.document;
    if (!doc || (doc.languageId !== LISTING_LANGUAGE && doc.uri.scheme !== DUMP_SCHEME)) {
      void vscode.window.showWarningMessage('Open a dump listing (Kadi Ops: Save Editable Copy of Dump Listing) and run this command from it.');
      return;
    }
    const text = doc.getText();
    const o = doc.uri.scheme === DUMP_SCHEME ? parseListingPath(doc.uri.path) : findOrigin(text);
    if (!o) {
      void vscode.window.showErrorMessage('This listing does not say which backup set it belongs to: its first line must be "; kadi-ops-origin: host=… set=…". Make a copy with "Save Editable Copy of Dump Listing".');
      return;
    }
    let profile: HostProfile;
    let original: TocListing;
    try {
      profile = docs.profileOf(o);
      original = parseListing(await docs.original(o));
    } catch (e) {
      void vscode.window.showErrorMessage(`${o.host}: ${(e as Error).message}`);
      return;
    }
    const problems = validateAgainst(parseListing(text), original);
    diagnostics.set(
      doc.uri,
      problems.map((p) => {
        const d = new vscode.Diagnostic(doc.lineAt(Math.min(p.line - 1, doc.lineCount - 1)).range, p.message, vscode.DiagnosticSeverity.Error);
        d.source = 'Kadi Ops';
        d.code = p.code;
        return d;
      }),
    );
    if (problems.length > 0) {
      void vscode.window.showErrorMessage(problemSummary(problems), { modal: true, detail: describeProblems(problems) });
      return;
    }
    await deps.restoreFromListing(profile, o.set, text);
  };

  return [
    diagnostics,
    vscode.workspace.registerTextDocumentContentProvider(DUMP_SCHEME, docs),
    vscode.workspace.onDidCloseTextDocument((d) => diagnostics.delete(d.uri)),
    vscode.languages.registerDocumentSymbolProvider(SELECTOR, {
      provideDocumentSymbols: (doc) => listingSymbols(parsed.get(doc)).map((s) => toDocumentSymbol(doc, s)),
    }, { label: 'Dump listing' }),
    vscode.languages.registerFoldingRangeProvider(SELECTOR, {
      provideFoldingRanges: (doc) => foldingRanges(parsed.get(doc)).map((r) => new vscode.FoldingRange(r.start, r.end, vscode.FoldingRangeKind.Region)),
    }),
    vscode.languages.registerHoverProvider(SELECTOR, {
      provideHover: (doc, pos) => {
        const h = hoverAt(parsed.get(doc), pos.line, pos.character);
        return h ? new vscode.Hover(new vscode.MarkdownString(h.markdown), new vscode.Range(pos.line, h.start, pos.line, h.end)) : undefined;
      },
    }),
    vscode.commands.registerCommand('kadiOps.showDumpListing', showListing),
    vscode.commands.registerCommand('kadiOps.saveListingCopy', saveCopy),
    vscode.commands.registerCommand('kadiOps.restoreFromListing', restoreFromListing),
  ];
}
