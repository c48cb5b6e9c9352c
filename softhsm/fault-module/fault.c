/*
 * kms fault-injection PKCS#11 module -- FOR TESTS ONLY.
 *
 * A shim that loads a real PKCS#11 module (SoftHSMv2 by default), forwards every function of
 * its C_GetFunctionList, and injects the failures that SoftHSM cannot produce on demand: a user
 * locked out after repeated wrong PINs (CloudHSM locks its crypto users), an HSM that stops
 * answering, a token that disappears, a slow HSM, and a token that generates AES-GCM IVs itself
 * (CloudHSM refuses caller IVs). Faults are chosen per *token label* by
 * files in the directory named by the environment variable KMS_FAULT_DIR (read once, when the
 * module is first loaded); without it the shim only forwards.
 *
 *   <label>.fail           every call on the token's slot or sessions returns CKR_DEVICE_ERROR
 *                          (the HSM is unreachable or its module fails), except C_GetSlotInfo
 *                          and C_GetTokenInfo, which still describe the token, and
 *                          C_CloseSession / C_CloseAllSessions, which always clean up.
 *   <label>.removed        the token is gone: C_GetSlotList(CK_TRUE) leaves its slot out,
 *                          C_GetSlotInfo clears CKF_TOKEN_PRESENT, slot calls return
 *                          CKR_TOKEN_NOT_PRESENT and session calls CKR_DEVICE_REMOVED.
 *   <label>.delay-ms       a number of milliseconds that each C_Encrypt / C_Decrypt producing
 *                          output sleeps before it runs (holds the session: pool exhaustion).
 *   <label>.login-delay-ms a number of milliseconds that each C_Login as CKU_USER sleeps before
 *                          it runs (a slow connect: lets a test act while a connect is logging in).
 *   <label>.token-iv       the token generates AES-GCM IVs itself, as AWS CloudHSM does: C_EncryptInit
 *                          with CKM_AES_GCM refuses a caller-supplied IV that is not all zeros
 *                          (CKR_MECHANISM_PARAM_INVALID), and otherwise writes a random IV of
 *                          ulIvLen bytes into the caller's pIv buffer and encrypts with it.
 *                          Decryption is unaffected (the caller passes the IV).
 *   <label>.token-ivs      written by the shim while token-iv is set: each IV it generated, in
 *                          hex, one a line (IVs are not secret), so tests can tell the token's IVs
 *                          from the host's.
 *   <label>.failed-logins  written by the shim: the count of consecutive CKR_PIN_INCORRECT
 *                          answers to C_Login as CKU_USER. At KMS_FAULT_LOCKOUT (5) failures the
 *                          user is locked: C_Login as CKU_USER returns CKR_PIN_LOCKED without
 *                          asking the real module, and C_GetTokenInfo sets CKF_USER_PIN_LOCKED
 *                          (CKF_USER_PIN_COUNT_LOW / _FINAL_TRY before that). A successful user
 *                          login or C_InitPIN resets it; so does deleting the file (an
 *                          administrator unlocking the user).
 *   <label>.shared-pin     the crypto user's PIN lives "on the HSM", shared by every process,
 *                          as on a networked HSM: SoftHSM keeps each token's PIN as it was when
 *                          the process initialized the module, so a PIN that another process set
 *                          is never seen. The file holds the token's real SoftHSM user PIN (a
 *                          test constant); the shim then answers C_SetPIN itself (recording a
 *                          64-bit FNV-1a hash of the new PIN, never the PIN, in
 *                          <label>.pin-hash) and checks C_Login as CKU_USER against that hash
 *                          before logging in to SoftHSM with the real PIN.
 *
 * Markers are checked on every call, so they can be created and removed while a process uses
 * the module. KMS_FAULT_TARGET overrides the real module's path.
 *
 * Build: softhsm/fault-module/build.sh OUT.so (needs gcc and libp11-kit-dev for pkcs11.h).
 * The tests build it themselves (tests/common/mod.rs, softhsm::fault_module()).
 *
 * Notes: when the real module is also loaded by path elsewhere in the process, dlopen returns
 * the same instance, so both see the same tokens, sessions and login state, and the second
 * C_Initialize answers CKR_CRYPTOKI_ALREADY_INITIALIZED (forwarded as is). The shim never logs
 * or stores PINs (shared-pin mode: a hash of the current one, and the test's real PIN).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define DEFAULT_TARGET "/usr/lib/softhsm/libsofthsm2.so"
#define KMS_FAULT_LOCKOUT 5
#define LABEL_LEN 32
/* The longest AES-GCM IV of PKCS#11 2.40. */
#define GCM_MAX_IV 256

static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST shim;
static char fault_dir[2048];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t login_lock = PTHREAD_MUTEX_INITIALIZER;
static CK_RV load_rv = CKR_GENERAL_ERROR;

enum fault { FAULT_NONE, FAULT_FAIL, FAULT_REMOVED };

/* ---- fault state ------------------------------------------------------------------------- */

/* The label of the token in `slot` (trailing blanks removed, '/' replaced) or -1. */
static int slot_label(CK_SLOT_ID slot, char out[LABEL_LEN + 1])
{
    CK_TOKEN_INFO info;
    if (real->C_GetTokenInfo(slot, &info) != CKR_OK)
        return -1;
    memcpy(out, info.label, LABEL_LEN);
    out[LABEL_LEN] = '\0';
    for (int i = LABEL_LEN - 1; i >= 0 && (out[i] == ' ' || out[i] == '\0'); i--)
        out[i] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '/')
            *p = '_';
    return out[0] ? 0 : -1;
}

static int session_label(CK_SESSION_HANDLE h, char out[LABEL_LEN + 1])
{
    CK_SESSION_INFO si;
    if (real->C_GetSessionInfo(h, &si) != CKR_OK)
        return -1;
    return slot_label(si.slotID, out);
}

static void marker_path(const char *label, const char *suffix, char *out, size_t n)
{
    snprintf(out, n, "%s/%s.%s", fault_dir, label, suffix);
}

static int has_marker(const char *label, const char *suffix)
{
    char path[4096];
    struct stat st;
    marker_path(label, suffix, path, sizeof path);
    return stat(path, &st) == 0;
}

/* A non-negative number read from a marker file; 0 when absent or unreadable. */
static long read_number(const char *label, const char *suffix)
{
    char path[4096];
    long v = 0;
    marker_path(label, suffix, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld", &v) != 1 || v < 0)
        v = 0;
    fclose(f);
    return v;
}

static void write_number(const char *label, const char *suffix, long v)
{
    char path[4096];
    marker_path(label, suffix, path, sizeof path);
    if (v == 0) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "%ld\n", v);
    fclose(f);
}

static enum fault fault_of(const char *label)
{
    if (has_marker(label, "removed"))
        return FAULT_REMOVED;
    if (has_marker(label, "fail"))
        return FAULT_FAIL;
    return FAULT_NONE;
}

/* The answer for a call on `slot`: CKR_OK to forward it. */
static CK_RV slot_fault(CK_SLOT_ID slot)
{
    char label[LABEL_LEN + 1];
    if (!fault_dir[0] || slot_label(slot, label) != 0)
        return CKR_OK;
    switch (fault_of(label)) {
    case FAULT_REMOVED:
        return CKR_TOKEN_NOT_PRESENT;
    case FAULT_FAIL:
        return CKR_DEVICE_ERROR;
    default:
        return CKR_OK;
    }
}

/* The answer for a call on session `h`: CKR_OK to forward it. `label` (optional) receives the
 * token label, or "" when it is unknown. */
static CK_RV session_fault(CK_SESSION_HANDLE h, char *label)
{
    char buf[LABEL_LEN + 1];
    char *l = label ? label : buf;
    l[0] = '\0';
    if (!fault_dir[0] || session_label(h, l) != 0) {
        l[0] = '\0';
        return CKR_OK;
    }
    switch (fault_of(l)) {
    case FAULT_REMOVED:
        return CKR_DEVICE_REMOVED;
    case FAULT_FAIL:
        return CKR_DEVICE_ERROR;
    default:
        return CKR_OK;
    }
}

static void maybe_delay_by(const char *label, const char *marker)
{
    if (!label[0])
        return;
    long ms = read_number(label, marker);
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void maybe_delay(const char *label)
{
    maybe_delay_by(label, "delay-ms");
}

/* Appends `iv` in hex as one line to <label>.token-ivs (one write(2) with O_APPEND, so lines
 * of concurrent callers never interleave). */
static void log_token_iv(const char *label, const unsigned char *iv, unsigned long n)
{
    static const char hex[] = "0123456789abcdef";
    char path[4096];
    char line[2 * GCM_MAX_IV + 1];
    unsigned long i;
    for (i = 0; i < n; i++) {
        line[2 * i] = hex[iv[i] >> 4];
        line[2 * i + 1] = hex[iv[i] & 0x0f];
    }
    line[2 * n] = '\n';
    marker_path(label, "token-ivs", path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0)
        return;
    if (write(fd, line, 2 * n + 1) < 0) {
        /* Only tests read the log; the encryption goes on. */
    }
    close(fd);
}

/* A token that generates GCM IVs (marker token-iv): refuses a caller IV, writes its own into
 * the caller's buffer. CKR_OK to forward the (now filled) mechanism to the real module. */
static CK_RV token_generated_iv(const char *label, CK_MECHANISM_PTR m)
{
    if (!m->pParameter || m->ulParameterLen != sizeof(CK_GCM_PARAMS))
        return CKR_MECHANISM_PARAM_INVALID;
    CK_GCM_PARAMS *gcm = (CK_GCM_PARAMS *)m->pParameter;
    if (!gcm->pIv || gcm->ulIvLen == 0 || gcm->ulIvLen > GCM_MAX_IV)
        return CKR_MECHANISM_PARAM_INVALID;
    for (CK_ULONG i = 0; i < gcm->ulIvLen; i++)
        if (gcm->pIv[i] != 0)
            return CKR_MECHANISM_PARAM_INVALID;
    size_t filled = 0;
    while (filled < gcm->ulIvLen) {
        ssize_t got = getrandom(gcm->pIv + filled, gcm->ulIvLen - filled, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            memset(gcm->pIv, 0, gcm->ulIvLen);
            return CKR_FUNCTION_FAILED;
        }
        filled += (size_t)got;
    }
    log_token_iv(label, gcm->pIv, gcm->ulIvLen);
    return CKR_OK;
}

/* ---- wrappers of calls on a slot --------------------------------------------------------- */

static CK_RV w_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
    if (!fault_dir[0] || !present)
        return real->C_GetSlotList(present, list, count);
    if (!count)
        return CKR_ARGUMENTS_BAD;
    CK_SLOT_ID *all = NULL;
    CK_ULONG n = 0;
    CK_RV rv;
    for (;;) {
        rv = real->C_GetSlotList(CK_TRUE, NULL, &n);
        if (rv != CKR_OK)
            return rv;
        free(all);
        all = calloc(n + 1, sizeof *all);
        if (!all)
            return CKR_HOST_MEMORY;
        rv = real->C_GetSlotList(CK_TRUE, all, &n);
        if (rv != CKR_BUFFER_TOO_SMALL)
            break;
    }
    if (rv != CKR_OK) {
        free(all);
        return rv;
    }
    CK_ULONG kept = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        char label[LABEL_LEN + 1];
        if (slot_label(all[i], label) == 0 && fault_of(label) == FAULT_REMOVED)
            continue;
        all[kept++] = all[i];
    }
    if (list) {
        if (*count < kept) {
            *count = kept;
            free(all);
            return CKR_BUFFER_TOO_SMALL;
        }
        memcpy(list, all, kept * sizeof *all);
    }
    *count = kept;
    free(all);
    return CKR_OK;
}

static CK_RV w_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    CK_RV rv = real->C_GetSlotInfo(slot, info);
    char label[LABEL_LEN + 1];
    if (rv == CKR_OK && info && fault_dir[0] && slot_label(slot, label) == 0 &&
        fault_of(label) == FAULT_REMOVED)
        info->flags &= ~CKF_TOKEN_PRESENT;
    return rv;
}

static CK_RV w_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    char label[LABEL_LEN + 1];
    if (!fault_dir[0] || slot_label(slot, label) != 0)
        return real->C_GetTokenInfo(slot, info);
    if (fault_of(label) == FAULT_REMOVED)
        return CKR_TOKEN_NOT_PRESENT;
    CK_RV rv = real->C_GetTokenInfo(slot, info);
    if (rv != CKR_OK || !info)
        return rv;
    long failed = read_number(label, "failed-logins");
    if (failed >= KMS_FAULT_LOCKOUT)
        info->flags |= CKF_USER_PIN_LOCKED;
    else if (failed == KMS_FAULT_LOCKOUT - 1)
        info->flags |= CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW;
    else if (failed > 0)
        info->flags |= CKF_USER_PIN_COUNT_LOW;
    return rv;
}

#define SLOT_WRAP(name, params, args)                                                           \
    static CK_RV w_##name params                                                               \
    {                                                                                          \
        CK_RV rv = slot_fault(slotID);                                                         \
        if (rv != CKR_OK)                                                                      \
            return rv;                                                                         \
        return real->C_##name args;                                                            \
    }

SLOT_WRAP(GetMechanismList, (CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count),
          (slotID, list, count))
SLOT_WRAP(GetMechanismInfo, (CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info),
          (slotID, type, info))
SLOT_WRAP(InitToken, (CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pin, CK_ULONG len, CK_UTF8CHAR_PTR label),
          (slotID, pin, len, label))
SLOT_WRAP(OpenSession,
          (CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
           CK_SESSION_HANDLE_PTR session),
          (slotID, flags, app, notify, session))

/* ---- wrappers of calls on a session ------------------------------------------------------ */

#define SESSION_WRAP(name, params, args)                                                        \
    static CK_RV w_##name params                                                               \
    {                                                                                          \
        CK_RV rv = session_fault(hSession, NULL);                                              \
        if (rv != CKR_OK)                                                                      \
            return rv;                                                                         \
        return real->C_##name args;                                                            \
    }

typedef CK_SESSION_HANDLE S;
typedef CK_OBJECT_HANDLE O;
typedef CK_BYTE_PTR B;
typedef CK_ULONG L;
typedef CK_ULONG_PTR LP;
typedef CK_MECHANISM_PTR M;
typedef CK_ATTRIBUTE_PTR A;

SESSION_WRAP(GetSessionInfo, (S hSession, CK_SESSION_INFO_PTR i), (hSession, i))
SESSION_WRAP(GetOperationState, (S hSession, B st, LP l), (hSession, st, l))
SESSION_WRAP(SetOperationState, (S hSession, B st, L l, O e, O a), (hSession, st, l, e, a))
SESSION_WRAP(Logout, (S hSession), (hSession))
SESSION_WRAP(CreateObject, (S hSession, A t, L c, CK_OBJECT_HANDLE_PTR o), (hSession, t, c, o))
SESSION_WRAP(CopyObject, (S hSession, O o, A t, L c, CK_OBJECT_HANDLE_PTR n),
             (hSession, o, t, c, n))
SESSION_WRAP(DestroyObject, (S hSession, O o), (hSession, o))
SESSION_WRAP(GetObjectSize, (S hSession, O o, LP s), (hSession, o, s))
SESSION_WRAP(GetAttributeValue, (S hSession, O o, A t, L c), (hSession, o, t, c))
SESSION_WRAP(SetAttributeValue, (S hSession, O o, A t, L c), (hSession, o, t, c))
SESSION_WRAP(FindObjectsInit, (S hSession, A t, L c), (hSession, t, c))
SESSION_WRAP(FindObjects, (S hSession, CK_OBJECT_HANDLE_PTR o, L m, LP c), (hSession, o, m, c))
SESSION_WRAP(FindObjectsFinal, (S hSession), (hSession))
SESSION_WRAP(EncryptUpdate, (S hSession, B p, L pl, B o, LP ol), (hSession, p, pl, o, ol))
SESSION_WRAP(EncryptFinal, (S hSession, B o, LP ol), (hSession, o, ol))
SESSION_WRAP(DecryptInit, (S hSession, M m, O k), (hSession, m, k))
SESSION_WRAP(DecryptUpdate, (S hSession, B p, L pl, B o, LP ol), (hSession, p, pl, o, ol))
SESSION_WRAP(DecryptFinal, (S hSession, B o, LP ol), (hSession, o, ol))
SESSION_WRAP(DigestInit, (S hSession, M m), (hSession, m))
SESSION_WRAP(Digest, (S hSession, B d, L dl, B o, LP ol), (hSession, d, dl, o, ol))
SESSION_WRAP(DigestUpdate, (S hSession, B p, L pl), (hSession, p, pl))
SESSION_WRAP(DigestKey, (S hSession, O k), (hSession, k))
SESSION_WRAP(DigestFinal, (S hSession, B o, LP ol), (hSession, o, ol))
SESSION_WRAP(SignInit, (S hSession, M m, O k), (hSession, m, k))
SESSION_WRAP(Sign, (S hSession, B d, L dl, B o, LP ol), (hSession, d, dl, o, ol))
SESSION_WRAP(SignUpdate, (S hSession, B p, L pl), (hSession, p, pl))
SESSION_WRAP(SignFinal, (S hSession, B o, LP ol), (hSession, o, ol))
SESSION_WRAP(SignRecoverInit, (S hSession, M m, O k), (hSession, m, k))
SESSION_WRAP(SignRecover, (S hSession, B d, L dl, B o, LP ol), (hSession, d, dl, o, ol))
SESSION_WRAP(VerifyInit, (S hSession, M m, O k), (hSession, m, k))
SESSION_WRAP(Verify, (S hSession, B d, L dl, B s, L sl), (hSession, d, dl, s, sl))
SESSION_WRAP(VerifyUpdate, (S hSession, B p, L pl), (hSession, p, pl))
SESSION_WRAP(VerifyFinal, (S hSession, B s, L sl), (hSession, s, sl))
SESSION_WRAP(VerifyRecoverInit, (S hSession, M m, O k), (hSession, m, k))
SESSION_WRAP(VerifyRecover, (S hSession, B s, L sl, B o, LP ol), (hSession, s, sl, o, ol))
SESSION_WRAP(DigestEncryptUpdate, (S hSession, B p, L pl, B o, LP ol), (hSession, p, pl, o, ol))
SESSION_WRAP(DecryptDigestUpdate, (S hSession, B p, L pl, B o, LP ol), (hSession, p, pl, o, ol))
SESSION_WRAP(SignEncryptUpdate, (S hSession, B p, L pl, B o, LP ol), (hSession, p, pl, o, ol))
SESSION_WRAP(DecryptVerifyUpdate, (S hSession, B p, L pl, B o, LP ol), (hSession, p, pl, o, ol))
SESSION_WRAP(GenerateKey, (S hSession, M m, A t, L c, CK_OBJECT_HANDLE_PTR k),
             (hSession, m, t, c, k))
SESSION_WRAP(GenerateKeyPair,
             (S hSession, M m, A pt, L pc, A st, L sc, CK_OBJECT_HANDLE_PTR pk,
              CK_OBJECT_HANDLE_PTR sk),
             (hSession, m, pt, pc, st, sc, pk, sk))
SESSION_WRAP(WrapKey, (S hSession, M m, O w, O k, B o, LP ol), (hSession, m, w, k, o, ol))
SESSION_WRAP(UnwrapKey, (S hSession, M m, O u, B w, L wl, A t, L c, CK_OBJECT_HANDLE_PTR k),
             (hSession, m, u, w, wl, t, c, k))
SESSION_WRAP(DeriveKey, (S hSession, M m, O b, A t, L c, CK_OBJECT_HANDLE_PTR k),
             (hSession, m, b, t, c, k))
SESSION_WRAP(SeedRandom, (S hSession, B s, L sl), (hSession, s, sl))
SESSION_WRAP(GenerateRandom, (S hSession, B r, L rl), (hSession, r, rl))
SESSION_WRAP(GetFunctionStatus, (S hSession), (hSession))
SESSION_WRAP(CancelFunction, (S hSession), (hSession))

static CK_RV w_EncryptInit(S hSession, M m, O k)
{
    char label[LABEL_LEN + 1];
    CK_RV rv = session_fault(hSession, label);
    if (rv != CKR_OK)
        return rv;
    if (m && m->mechanism == CKM_AES_GCM && label[0] && has_marker(label, "token-iv")) {
        rv = token_generated_iv(label, m);
        if (rv != CKR_OK)
            return rv;
    }
    return real->C_EncryptInit(hSession, m, k);
}

static CK_RV w_Encrypt(S hSession, B d, L dl, B o, LP ol)
{
    char label[LABEL_LEN + 1];
    CK_RV rv = session_fault(hSession, label);
    if (rv != CKR_OK)
        return rv;
    if (o)
        maybe_delay(label);
    return real->C_Encrypt(hSession, d, dl, o, ol);
}

static CK_RV w_Decrypt(S hSession, B d, L dl, B o, LP ol)
{
    char label[LABEL_LEN + 1];
    CK_RV rv = session_fault(hSession, label);
    if (rv != CKR_OK)
        return rv;
    if (o)
        maybe_delay(label);
    return real->C_Decrypt(hSession, d, dl, o, ol);
}

/* ---- shared PIN ------------------------------------------------------------------------ */

/* 64-bit FNV-1a, as 16 hex digits (a test double's PIN check, not a password hash). */
static void pin_hash(const unsigned char *pin, unsigned long len, char out[17])
{
    unsigned long long h = 1469598103934665603ULL;
    for (unsigned long i = 0; i < len; i++) {
        h ^= pin[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", h);
}

/* The real SoftHSM user PIN of a shared-pin token (0 when the marker is absent). */
static int shared_pin_real(const char *label, char *out, size_t n)
{
    char path[4096];
    marker_path(label, "shared-pin", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(out, (int)n, f) != NULL;
    fclose(f);
    if (!ok)
        return 0;
    out[strcspn(out, "\r\n")] = '\0';
    return out[0] != '\0';
}

/* The hash of the current shared PIN: the recorded one, else the real PIN's. */
static void shared_pin_current(const char *label, const char *real_pin, char out[17])
{
    char path[4096];
    marker_path(label, "pin-hash", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f) {
        int ok = fscanf(f, "%16s", out) == 1;
        fclose(f);
        if (ok)
            return;
    }
    pin_hash((const unsigned char *)real_pin, strlen(real_pin), out);
}

static CK_RV w_SetPIN(S hSession, CK_UTF8CHAR_PTR o, L ol, CK_UTF8CHAR_PTR n, L nl)
{
    char label[LABEL_LEN + 1], real_pin[256], current[17], old[17], fresh[17];
    CK_RV rv = session_fault(hSession, label);
    if (rv != CKR_OK)
        return rv;
    if (!label[0] || !shared_pin_real(label, real_pin, sizeof real_pin))
        return real->C_SetPIN(hSession, o, ol, n, nl);
    CK_SESSION_INFO si;
    rv = real->C_GetSessionInfo(hSession, &si);
    if (rv != CKR_OK)
        return rv;
    if (si.state != CKS_RW_USER_FUNCTIONS)
        return real->C_SetPIN(hSession, o, ol, n, nl); /* SO or public: as SoftHSM answers */
    pthread_mutex_lock(&login_lock);
    shared_pin_current(label, real_pin, current);
    pin_hash(o, ol, old);
    if (strcmp(current, old) != 0) {
        pthread_mutex_unlock(&login_lock);
        return CKR_PIN_INCORRECT;
    }
    pin_hash(n, nl, fresh);
    char path[4096];
    marker_path(label, "pin-hash", path, sizeof path);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s\n", fresh);
        fclose(f);
    }
    pthread_mutex_unlock(&login_lock);
    return f ? CKR_OK : CKR_DEVICE_ERROR;
}

static CK_RV w_Login(S hSession, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, L len)
{
    char label[LABEL_LEN + 1];
    CK_RV rv = session_fault(hSession, label);
    if (rv != CKR_OK)
        return rv;
    if (user != CKU_USER || !label[0])
        return real->C_Login(hSession, user, pin, len);
    maybe_delay_by(label, "login-delay-ms");
    pthread_mutex_lock(&login_lock);
    long failed = read_number(label, "failed-logins");
    if (failed >= KMS_FAULT_LOCKOUT) {
        pthread_mutex_unlock(&login_lock);
        return CKR_PIN_LOCKED;
    }
    char real_pin[256];
    if (shared_pin_real(label, real_pin, sizeof real_pin)) {
        char current[17], given[17];
        shared_pin_current(label, real_pin, current);
        pin_hash(pin, len, given);
        rv = strcmp(current, given) == 0
                 ? real->C_Login(hSession, user, (CK_UTF8CHAR_PTR)real_pin, strlen(real_pin))
                 : CKR_PIN_INCORRECT;
    } else {
        rv = real->C_Login(hSession, user, pin, len);
    }
    if (rv == CKR_PIN_INCORRECT)
        write_number(label, "failed-logins", failed + 1);
    else if (rv == CKR_OK && failed > 0)
        write_number(label, "failed-logins", 0);
    pthread_mutex_unlock(&login_lock);
    return rv;
}

static CK_RV w_InitPIN(S hSession, CK_UTF8CHAR_PTR pin, L len)
{
    char label[LABEL_LEN + 1];
    CK_RV rv = session_fault(hSession, label);
    if (rv != CKR_OK)
        return rv;
    rv = real->C_InitPIN(hSession, pin, len);
    if (rv == CKR_OK && label[0]) {
        pthread_mutex_lock(&login_lock);
        write_number(label, "failed-logins", 0);
        pthread_mutex_unlock(&login_lock);
    }
    return rv;
}

/* ---- loading ----------------------------------------------------------------------------- */

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

static void load(void)
{
    const char *dir = getenv("KMS_FAULT_DIR");
    const char *target = getenv("KMS_FAULT_TARGET");
    if (dir && strlen(dir) < sizeof fault_dir)
        strcpy(fault_dir, dir);
    if (!target || !target[0])
        target = DEFAULT_TARGET;
    void *lib = dlopen(target, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        load_rv = CKR_GENERAL_ERROR;
        return;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!get || get(&real) != CKR_OK || !real) {
        load_rv = CKR_GENERAL_ERROR;
        return;
    }
    shim = *real;
    shim.C_GetFunctionList = C_GetFunctionList;
    shim.C_GetSlotList = w_GetSlotList;
    shim.C_GetSlotInfo = w_GetSlotInfo;
    shim.C_GetTokenInfo = w_GetTokenInfo;
    shim.C_GetMechanismList = w_GetMechanismList;
    shim.C_GetMechanismInfo = w_GetMechanismInfo;
    shim.C_InitToken = w_InitToken;
    shim.C_InitPIN = w_InitPIN;
    shim.C_SetPIN = w_SetPIN;
    shim.C_OpenSession = w_OpenSession;
    shim.C_GetSessionInfo = w_GetSessionInfo;
    shim.C_GetOperationState = w_GetOperationState;
    shim.C_SetOperationState = w_SetOperationState;
    shim.C_Login = w_Login;
    shim.C_Logout = w_Logout;
    shim.C_CreateObject = w_CreateObject;
    shim.C_CopyObject = w_CopyObject;
    shim.C_DestroyObject = w_DestroyObject;
    shim.C_GetObjectSize = w_GetObjectSize;
    shim.C_GetAttributeValue = w_GetAttributeValue;
    shim.C_SetAttributeValue = w_SetAttributeValue;
    shim.C_FindObjectsInit = w_FindObjectsInit;
    shim.C_FindObjects = w_FindObjects;
    shim.C_FindObjectsFinal = w_FindObjectsFinal;
    shim.C_EncryptInit = w_EncryptInit;
    shim.C_Encrypt = w_Encrypt;
    shim.C_EncryptUpdate = w_EncryptUpdate;
    shim.C_EncryptFinal = w_EncryptFinal;
    shim.C_DecryptInit = w_DecryptInit;
    shim.C_Decrypt = w_Decrypt;
    shim.C_DecryptUpdate = w_DecryptUpdate;
    shim.C_DecryptFinal = w_DecryptFinal;
    shim.C_DigestInit = w_DigestInit;
    shim.C_Digest = w_Digest;
    shim.C_DigestUpdate = w_DigestUpdate;
    shim.C_DigestKey = w_DigestKey;
    shim.C_DigestFinal = w_DigestFinal;
    shim.C_SignInit = w_SignInit;
    shim.C_Sign = w_Sign;
    shim.C_SignUpdate = w_SignUpdate;
    shim.C_SignFinal = w_SignFinal;
    shim.C_SignRecoverInit = w_SignRecoverInit;
    shim.C_SignRecover = w_SignRecover;
    shim.C_VerifyInit = w_VerifyInit;
    shim.C_Verify = w_Verify;
    shim.C_VerifyUpdate = w_VerifyUpdate;
    shim.C_VerifyFinal = w_VerifyFinal;
    shim.C_VerifyRecoverInit = w_VerifyRecoverInit;
    shim.C_VerifyRecover = w_VerifyRecover;
    shim.C_DigestEncryptUpdate = w_DigestEncryptUpdate;
    shim.C_DecryptDigestUpdate = w_DecryptDigestUpdate;
    shim.C_SignEncryptUpdate = w_SignEncryptUpdate;
    shim.C_DecryptVerifyUpdate = w_DecryptVerifyUpdate;
    shim.C_GenerateKey = w_GenerateKey;
    shim.C_GenerateKeyPair = w_GenerateKeyPair;
    shim.C_WrapKey = w_WrapKey;
    shim.C_UnwrapKey = w_UnwrapKey;
    shim.C_DeriveKey = w_DeriveKey;
    shim.C_SeedRandom = w_SeedRandom;
    shim.C_GenerateRandom = w_GenerateRandom;
    shim.C_GetFunctionStatus = w_GetFunctionStatus;
    shim.C_CancelFunction = w_CancelFunction;
    /* Forwarded unchanged: C_Initialize, C_Finalize, C_GetInfo, C_CloseSession,
     * C_CloseAllSessions, C_WaitForSlotEvent. */
    load_rv = CKR_OK;
}

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    if (!list)
        return CKR_ARGUMENTS_BAD;
    pthread_once(&once, load);
    if (load_rv != CKR_OK)
        return load_rv;
    *list = &shim;
    return CKR_OK;
}
