// Proxy auto-config made by pilotwire from its endpoint catalog.
// pilotwire endpoints export --phase mdm-enrollment,ime,delivery-optimization
// Hosts the 48 catalog patterns cover go PROXY 127.0.0.1:8080; all other hosts go DIRECT.
var catalogExact = {
  "enrollment.manage.microsoftonline.cn": 1,
  "enterpriseenrollment-s.manage.microsoftonline.cn": 1,
  "portal.manage.microsoftonline.cn": 1,
  "win1910.ipv6.microsoft.com": 1,
  "manage.microsoft.com": 1,
  "enrollment.manage.microsoft.com": 1,
  "enterpriseenrollment.manage.microsoft.com": 1,
  "enterpriseenrollment-s.manage.microsoft.com": 1,
  "imeswda-afd-hotfix.manage.microsoft.com": 1,
  "imeswda-afd-primary.manage.microsoft.com": 1,
  "imeswda-afd-secondary.manage.microsoft.com": 1,
  "imeswdb-afd-hotfix.manage.microsoft.com": 1,
  "imeswdb-afd-primary.manage.microsoft.com": 1,
  "imeswdb-afd-secondary.manage.microsoft.com": 1,
  "imeswdc-afd-hotfix.manage.microsoft.com": 1,
  "imeswdc-afd-primary.manage.microsoft.com": 1,
  "imeswdc-afd-secondary.manage.microsoft.com": 1,
  "m.manage.microsoft.com": 1,
  "portal.manage.microsoft.com": 1,
  "sts.manage.microsoft.com": 1,
  "geo.prod.do.dsp.mp.microsoft.com": 1,
  "geover.prod.do.dsp.mp.microsoft.com": 1,
  "approdimedatahotfix.azureedge.net": 1,
  "approdimedatapri.azureedge.net": 1,
  "approdimedatasec.azureedge.net": 1,
  "euprodimedatahotfix.azureedge.net": 1,
  "euprodimedatapri.azureedge.net": 1,
  "euprodimedatasec.azureedge.net": 1,
  "naprodimedatahotfix.azureedge.net": 1,
  "naprodimedatapri.azureedge.net": 1,
  "naprodimedatasec.azureedge.net": 1,
  "enrollment.manage.microsoft.us": 1,
  "enterpriseenrollment-s.manage.microsoft.us": 1
};
// "*.suffix" patterns: any name strictly under the suffix.
var catalogUnder = {
  "manage.microsoft.cn": 1,
  "manage.microsoftonline.cn": 1,
  "manage.microsoft.com": 1,
  "do.dsp.mp.microsoft.com": 1,
  "prod.do.dsp.mp.microsoft.com": 1,
  "manage.microsoft.us": 1
};
var catalogPatterns = [
  /^fef\.[^.]+(\.[^.]+)*\.manage\.microsoftonline\.cn$/, // fef.*.manage.microsoftonline.cn
  /^fef\.[^.]+(\.[^.]+)*\.manage\.microsoft\.com$/, // fef.*.manage.microsoft.com
  /^fei\.[^.]+(\.[^.]+)*\.manage\.microsoft\.com$/, // fei.*.manage.microsoft.com
  /^m\.fei\.[^.]+(\.[^.]+)*\.manage\.microsoft\.com$/, // m.fei.*.manage.microsoft.com
  /^portal\.fei\.[^.]+(\.[^.]+)*\.manage\.microsoft\.com$/, // portal.fei.*.manage.microsoft.com
  /^array[^.]*\.prod\.do\.dsp\.mp\.microsoft\.com$/, // array*.prod.do.dsp.mp.microsoft.com
  /^cp[^.]*\.prod\.do\.dsp\.mp\.microsoft\.com$/, // cp*.prod.do.dsp.mp.microsoft.com
  /^disc[^.]*\.prod\.do\.dsp\.mp\.microsoft\.com$/, // disc*.prod.do.dsp.mp.microsoft.com
  /^kv[^.]*\.prod\.do\.dsp\.mp\.microsoft\.com$/ // kv*.prod.do.dsp.mp.microsoft.com
];

function inCatalog(host) {
  host = host.toLowerCase();
  if (host.charAt(host.length - 1) == ".") {
    host = host.substring(0, host.length - 1);
  }
  if (Object.prototype.hasOwnProperty.call(catalogExact, host)) {
    return true;
  }
  for (var i = host.indexOf("."); i >= 0; i = host.indexOf(".", i + 1)) {
    if (Object.prototype.hasOwnProperty.call(catalogUnder, host.substring(i + 1))) {
      return true;
    }
  }
  for (var j = 0; j < catalogPatterns.length; j++) {
    if (catalogPatterns[j].test(host)) {
      return true;
    }
  }
  return false;
}

function FindProxyForURL(url, host) {
  if (inCatalog(host)) {
    return "PROXY 127.0.0.1:8080";
  }
  return "DIRECT";
}
