/* Wine 8 (Debian 12) has no bcryptprimitives.dll, whose ProcessPrng Rust's std calls for
 * random numbers on Windows 10 and later (rust-lang/rust#121337); wine 9 has it. This stands
 * in for it in the test prefix only, over RtlGenRandom, which wine 8 implements. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
