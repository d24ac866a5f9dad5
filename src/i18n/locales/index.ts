// Every supported locale: one line each (docs/I18N.md, "Adding a locale").
export { default as en } from './en.js';
export { default as de } from './de.js';
export { default as fr } from './fr.js';
export { default as es } from './es.js';
