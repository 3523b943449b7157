// The main package's entry point (`auditledger`): the HTTP client's public API.
export * from './client/client.js';
