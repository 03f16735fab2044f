// An external module, not an inline one: the CSP allows only 'self' scripts.
import init from './pkg/ui.js';
init();
