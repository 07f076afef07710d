// The pages. `enabled: false` keeps a page out of the navigation until the server has the
// endpoint it reads: switching one on is this one line.
const DASHBOARD_SOCKET = '/api/v1/ws/dashboard';

export const PAGES = [
  {id: 'dashboard', title: 'Dashboard', role: 'viewer', enabled: true, socket: DASHBOARD_SOCKET, load: () => import('./dashboard.js')},
  {id: 'jobs', title: 'Jobs', role: 'viewer', enabled: true, socket: '/ws/jobs', load: () => import('./jobs.js')},
  {id: 'history', title: 'History', role: 'viewer', enabled: true, socket: DASHBOARD_SOCKET, load: () => import('./history.js')},
  {id: 'analytics', title: 'Analytics', role: 'viewer', enabled: true, socket: DASHBOARD_SOCKET, load: () => import('./analytics.js')},
  {id: 'documents', title: 'Documents', role: 'viewer', enabled: true, socket: DASHBOARD_SOCKET, load: () => import('./documents.js')},
  {id: 'generate', title: 'Generate', role: 'operator', enabled: true, socket: DASHBOARD_SOCKET, load: () => import('./generate.js')},
  {id: 'content', title: 'Content', role: 'viewer', enabled: true, socket: DASHBOARD_SOCKET, load: () => import('./content.js')},
  {id: 'cache', title: 'Cache', role: 'viewer', enabled: true, socket: DASHBOARD_SOCKET, load: () => import('./cache.js')},
  {id: 'activity', title: 'Activity', role: 'viewer', enabled: true, socket: DASHBOARD_SOCKET, load: () => import('./activity.js')},
  {id: 'admin', title: 'Admin', role: 'admin', enabled: true, socket: DASHBOARD_SOCKET, load: () => import('./admin.js')},
];

// Parts of pages that read endpoints of their own: switched on the same way.
export const FEATURES = {
  metrics: true,  // Dashboard tiles from GET /api/metrics
  restart: true,  // Admin's restart button: POST /admin/restart
};

export const ROLES = ['viewer', 'operator', 'admin'];

/** Whether a key of role `have` may do what needs `need`. */
export function allows(have, need) {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}
