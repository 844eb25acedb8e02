#if Vapor
#endif
