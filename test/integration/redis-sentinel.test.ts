// The service behind Redis Sentinel (a master, a replica, three sentinels) on loopback (see topology-suite.ts).
import { topologySuite } from './topology-suite.js';

topologySuite('sentinel');
