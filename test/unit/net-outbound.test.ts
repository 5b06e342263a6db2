import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  EMPTY_ALLOW_LIST,
  OutboundRefusedError,
  checkOutboundUrl,
  isAddressPermitted,
  isPublicAddress,
  parseAllowList,
} from '../../src/net/outbound.js';

const PUBLIC = [
  '8.8.8.8',
  '1.1.1.1',
  '93.184.216.34',
  '100.63.255.255',
  '100.128.0.0',
  '172.15.255.255',
  '172.32.0.0',
  '2606:4700:4700::1111',
  '2a00:1450:4001::200e',
  '::ffff:8.8.8.8',
];

const INTERNAL = [
  // IPv4: unspecified, private, loopback, link-local (metadata), CGNAT, multicast, broadcast, reserved
  '0.0.0.0',
  '0.1.2.3',
  '10.0.0.1',
  '10.255.255.255',
  '172.16.0.1',
  '172.31.255.255',
  '192.168.0.1',
  '192.168.255.255',
  '127.0.0.1',
  '127.1.2.3',
  '127.255.255.255',
  '169.254.0.1',
  '169.254.169.254',
  '100.64.0.1',
  '100.127.255.255',
  '224.0.0.1',
  '239.255.255.250',
  '255.255.255.255',
  '240.0.0.1',
  '192.0.0.1',
  '192.0.2.1',
  '198.18.0.1',
  '198.51.100.1',
  '203.0.113.1',
  // IPv6: unspecified, loopback, unique-local (AWS metadata fd00:ec2::254), link-local, site-local, multicast
  '::',
  '::1',
  'fc00::1',
  'fd00:ec2::254',
  'fd12:3456:789a::1',
  'fe80::1',
  'fe80::1%eth0',
  'fec0::1',
  'ff02::1',
  'ff05::2',
  // IPv4 inside IPv6: mapped, compatible, NAT64, 6to4, Teredo; documentation
  '::ffff:127.0.0.1',
  '::ffff:7f00:1',
  '::ffff:10.0.0.1',
  '::ffff:169.254.169.254',
  '::127.0.0.1',
  '::7f00:1',
  '::10.0.0.1',
  '64:ff9b::7f00:1',
  '64:ff9b::a9fe:a9fe',
  '2002:7f00:1::',
  '2002:a9fe:a9fe::1',
  '2001::1',
  '2001:db8::1',
  '100::1',
  // not addresses
  'localhost',
  'not-an-address',
  '',
  '127.1',
  '0x7f000001',
];

test('only globally routable unicast addresses are public', () => {
  for (const address of PUBLIC) assert.equal(isPublicAddress(address), true, address);
  for (const address of INTERNAL) assert.equal(isPublicAddress(address), false, address);
});

test('OUTBOUND_ALLOW takes host names, addresses and CIDRs, and nothing else', () => {
  const allow = parseAllowList(' 127.0.0.1, 10.0.0.0/8 ,[::1], Images.Internal, ::ffff:192.168.0.0/112, fd00::/8');
  assert.equal(isAddressPermitted('x', '127.0.0.1', allow), true);
  assert.equal(isAddressPermitted('x', '127.0.0.2', allow), false);
  assert.equal(isAddressPermitted('x', '::ffff:127.0.0.1', allow), true, 'mapped judged as IPv4');
  assert.equal(isAddressPermitted('x', '10.200.1.1', allow), true);
  assert.equal(isAddressPermitted('x', '11.0.0.1', allow), true, 'public anyway');
  assert.equal(isAddressPermitted('x', '::1', allow), true);
  assert.equal(isAddressPermitted('x', '192.168.3.4', allow), true);
  assert.equal(isAddressPermitted('x', '192.169.0.1', allow), true, 'public anyway');
  assert.equal(isAddressPermitted('x', '172.16.0.1', allow), false);
  assert.equal(isAddressPermitted('x', 'fd12::1', allow), true);
  assert.equal(isAddressPermitted('x', 'fe80::1', allow), false);
  assert.equal(isAddressPermitted('images.internal', '10.0.0.1', allow), true, 'host names case-insensitively');
  assert.equal(isAddressPermitted('IMAGES.INTERNAL', '172.16.0.1', allow), true);
  assert.equal(isAddressPermitted('other.internal', '172.16.0.1', allow), false);
  assert.deepEqual(parseAllowList(''), { hosts: new Set(), ranges: [] });
  assert.deepEqual(parseAllowList(undefined), { hosts: new Set(), ranges: [] });
  for (const bad of ['10.0.0.0/33', 'not a host', 'http://x', '1.2.3.4/x', 'a..b']) {
    assert.throws(() => parseAllowList(bad), /is (not a CIDR|neither)/, bad);
  }
});

test('checkOutboundUrl refuses other schemes and internal literals before any connection', () => {
  for (const url of [
    'file:///etc/passwd',
    'ftp://example.com/x',
    'gopher://example.com',
    'data:image/png;base64,AA==',
    'javascript:alert(1)',
    'not a url',
  ]) {
    assert.throws(() => checkOutboundUrl(url, EMPTY_ALLOW_LIST), OutboundRefusedError, url);
  }
  for (const url of [
    'http://127.0.0.1/',
    'http://[::1]:8080/',
    'https://169.254.169.254/latest/meta-data',
    'http://[::ffff:7f00:1]/',
    'http://0.0.0.0:80/',
    'http://10.0.0.1/',
    'http://0x7f000001/',
    'http://2130706433/',
    'http://127.1/',
    'http://[fd00:ec2::254]/',
  ]) {
    assert.throws(() => checkOutboundUrl(url, EMPTY_ALLOW_LIST), /not a public address/, url);
  }
  assert.equal(checkOutboundUrl('http://127.0.0.1:9/x', parseAllowList('127.0.0.1')).port, '9');
  // Names pass here; their addresses are judged when connecting.
  assert.equal(checkOutboundUrl('https://localhost/x', EMPTY_ALLOW_LIST).hostname, 'localhost');
  assert.equal(checkOutboundUrl('https://8.8.8.8/x', EMPTY_ALLOW_LIST).hostname, '8.8.8.8');
});
