// The host page's script for Retraced's own viewer (@retracedhq/logs-viewer, React), bundled by
// test/viewer/viewer.test.ts with esbuild and served locally: the widget pointed at our server.
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import RetracedEventsBrowser from '@retracedhq/logs-viewer';

const params = new URLSearchParams(location.search);
createRoot(document.getElementById('root')).render(
  createElement(RetracedEventsBrowser, {
    host: params.get('host'),
    auditLogToken: params.get('token'),
    header: 'Audit Logs',
    fields: [
      { label: 'Action', field: 'action' },
      { label: 'Actor', field: 'actor' },
      { label: 'Date', field: 'canonical_time' },
    ],
  }),
);
