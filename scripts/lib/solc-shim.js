#!/usr/bin/env node
// A native-`solc`-compatible command line over solc-js (npm `solc`, wasm).
//
// Native compilers cannot be downloaded on FinVault's machines, but py-solc-x, ape-solidity and
// forge all drive `solc` through its CLI. This shim answers the subset of that CLI they use:
//   --version | --help
//   --standard-json [FILE|-]          with --base-path, --include-path, --allow-paths
//   --combined-json KINDS FILES...    with --optimize, --optimize-runs, --evm-version, --via-ir,
//                                     remappings (prefix=target) and --base-path/--include-path
// solc-js's own CLI prints an SMT notice on stdout before the JSON, so we call compile() directly.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

// solc-js reports "0.8.28+commit.7893614a.Emscripten.clang"; tools parse the native format.
const VERSION = solc.version().replace('.Emscripten.clang', '.Linux.g++');

function fail(message, code = 1) {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n');
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { files: [], remappings: [], includePaths: [], allowPaths: [], optimize: false };
  const takesValue = new Set([
    '--combined-json', '--base-path', '--include-path', '--allow-paths', '--optimize-runs',
    '--evm-version', '--output-dir', '--metadata-hash', '--json-indent', '--revert-strings',
  ]);
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    if (arg.startsWith('--') && arg.includes('=')) {
      [arg, value] = [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)];
    } else if (takesValue.has(arg)) {
      if (i + 1 >= argv.length) fail(`the option '${arg}' requires an argument`);
      value = argv[++i];
    }
    switch (arg) {
      case '--version': case '-v': opts.version = true; break;
      case '--help': case '-h': opts.help = true; break;
      case '--standard-json': opts.standardJson = true; break;
      case '--combined-json': opts.combinedJson = value.split(','); break;
      case '--base-path': opts.basePath = value; break;
      case '--include-path': opts.includePaths.push(value); break;
      case '--allow-paths': opts.allowPaths.push(...value.split(',')); break;
      case '--optimize': opts.optimize = true; break;
      case '--optimize-runs': opts.optimizeRuns = parseInt(value, 10); break;
      case '--evm-version': opts.evmVersion = value; break;
      case '--via-ir': opts.viaIR = true; break;
      case '--metadata-hash': opts.metadataHash = value; break;
      case '--revert-strings': opts.revertStrings = value; break;
      // Accepted for compatibility; output always goes to stdout.
      case '--output-dir': case '--json-indent': case '--pretty-json': case '--no-color':
      case '--overwrite': case '--no-optimize-yul':
        break;
      default:
        if (arg.startsWith('-') && arg !== '-') fail(`unrecognised option '${arg}'`);
        if (arg !== '-' && arg.includes('=') && !fs.existsSync(arg)) opts.remappings.push(arg);
        else opts.files.push(arg);
    }
  }
  return opts;
}

// Resolves imports the way native solc does with --base-path/--include-path: try each root.
function makeImportCallback(opts) {
  const roots = [opts.basePath || process.cwd(), ...opts.includePaths, ...opts.allowPaths];
  return (importPath) => {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((root) => path.resolve(root, importPath));
    for (const candidate of candidates) {
      try {
        return { contents: fs.readFileSync(candidate, 'utf8') };
      } catch (err) {
        if (err.code !== 'ENOENT' && err.code !== 'EISDIR') return { error: err.message };
      }
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
  };
}

function compile(input, opts) {
  return JSON.parse(solc.compile(JSON.stringify(input), { import: makeImportCallback(opts) }));
}

function readInput(file) {
  return fs.readFileSync(file && file !== '-' ? file : 0, 'utf8');
}

function standardJson(opts) {
  let input;
  try {
    input = JSON.parse(readInput(opts.files[0]));
  } catch (err) {
    // Native solc reports malformed input inside the JSON output and exits 0.
    const error = { component: 'general', formattedMessage: `Error: ${err.message}`,
      message: err.message, severity: 'error', type: 'JSONError' };
    process.stdout.write(JSON.stringify({ errors: [error] }) + '\n');
    return;
  }
  process.stdout.write(JSON.stringify(compile(input, opts)) + '\n');
}

const COMBINED_SELECTIONS = {
  abi: 'abi', bin: 'evm.bytecode.object', 'bin-runtime': 'evm.deployedBytecode.object',
  metadata: 'metadata', hashes: 'evm.methodIdentifiers', userdoc: 'userdoc', devdoc: 'devdoc',
  'srcmap': 'evm.bytecode.sourceMap', 'srcmap-runtime': 'evm.deployedBytecode.sourceMap',
  'storage-layout': 'storageLayout', opcodes: 'evm.bytecode.opcodes', asm: 'evm.legacyAssembly',
};

function pick(obj, dotted) {
  return dotted.split('.').reduce((value, key) => (value == null ? value : value[key]), obj);
}

function combinedJson(opts) {
  if (opts.files.length === 0) fail('No input files given.');
  const kinds = opts.combinedJson.filter((k) => k !== 'ast');
  for (const kind of kinds) {
    if (!(kind in COMBINED_SELECTIONS)) fail(`Invalid option to --combined-json: ${kind}`);
  }
  const sources = {};
  for (const file of opts.files) sources[file] = { content: readInput(file) };
  const settings = {
    optimizer: { enabled: opts.optimize, runs: Number.isFinite(opts.optimizeRuns) ? opts.optimizeRuns : 200 },
    remappings: opts.remappings,
    outputSelection: { '*': { '*': kinds.map((k) => COMBINED_SELECTIONS[k]), '': ['ast'] } },
  };
  if (opts.evmVersion) settings.evmVersion = opts.evmVersion;
  if (opts.viaIR) settings.viaIR = true;
  if (opts.metadataHash) settings.metadata = { bytecodeHash: opts.metadataHash };
  if (opts.revertStrings) settings.debug = { revertStrings: opts.revertStrings };
  const output = compile({ language: 'Solidity', sources, settings }, opts);
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage || e.message);
  if (errors.length > 0) process.exit(1);

  const contracts = {};
  for (const [file, byName] of Object.entries(output.contracts || {})) {
    for (const [name, artifact] of Object.entries(byName)) {
      const entry = {};
      for (const kind of kinds) entry[kind] = pick(artifact, COMBINED_SELECTIONS[kind]);
      contracts[`${file}:${name}`] = entry;
    }
  }
  const sourceList = Object.keys(output.sources || {});
  const result = { contracts, sourceList, version: VERSION };
  if (opts.combinedJson.includes('ast')) {
    result.sources = Object.fromEntries(sourceList.map((f) => [f, { AST: output.sources[f].ast }]));
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${VERSION}\n`);
  } else if (opts.help) {
    process.stdout.write(`solc ${VERSION} (solc-js shim)\n` +
      'Usage: solc --standard-json [FILE|-] | solc --combined-json KINDS FILES...\n');
  } else if (opts.standardJson) {
    standardJson(opts);
  } else if (opts.combinedJson) {
    combinedJson(opts);
  } else {
    fail('This solc-js shim supports --version, --standard-json and --combined-json only.');
  }
}

main();
