// js-yaml 4 ships no types and @types/js-yaml is not installed: the two functions the deploy specs use.
declare module 'js-yaml' {
  export function load(text: string): unknown;
  export function loadAll(text: string): unknown[];
}
