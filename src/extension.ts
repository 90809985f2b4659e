// Entry point of the VS Code extension; all VS Code glue lives in src/ui.
export { activate, deactivate } from './ui/activate';
